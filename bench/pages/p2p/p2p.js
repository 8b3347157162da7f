// Page-to-page benchmark roles, chosen by appId: "relay" forwards `bench.p2p.go` to
// `bench.p2p.ab`; "answer" acknowledges `bench.p2p.ab` on `bench.p2p.ack`; every
// other app is live (loaded, bridge connected, subscribed to a topic of its own) but
// not part of the exchange.
"use strict";

const role = weft.identity.appId;
document.getElementById("role").textContent = role;

let setup;
if (role === "relay") {
  setup = weft.subscribe("bench.p2p.go", (d) => weft.publish("bench.p2p.ab", d));
} else if (role === "answer") {
  setup = weft.subscribe("bench.p2p.ab", (d) => weft.publish("bench.p2p.ack", d));
} else {
  setup = weft.subscribe("bench.p2p.idle." + role, () => {});
}
setup.then(() => weft.publish("bench.p2p.ready", role));
