// Publishes the selected instrument on `demo.instrument.selected`.
"use strict";

const instruments = [
  { symbol: "EURUSD", name: "Euro / US Dollar", price: 1.0842 },
  { symbol: "GBPUSD", name: "Pound / US Dollar", price: 1.2719 },
  { symbol: "USDJPY", name: "US Dollar / Yen", price: 151.37 },
  { symbol: "AAPL", name: "Apple Inc.", price: 189.84 },
  { symbol: "MSFT", name: "Microsoft Corp.", price: 415.5 },
  { symbol: "XAUUSD", name: "Gold", price: 2331.2 },
];

const body = document.querySelector("#list tbody");
const status = document.getElementById("status");
document.getElementById("who").textContent = weft.identity.instanceId;

function select(row, inst) {
  for (const r of body.querySelectorAll("tr")) r.classList.remove("selected");
  row.classList.add("selected");
  weft
    .publish("demo.instrument.selected", { symbol: inst.symbol, name: inst.name, price: inst.price })
    .then(() => (status.textContent = "Shared " + inst.symbol))
    .catch((e) => (status.textContent = "Could not share: " + e.code + " " + e.message));
}

for (const inst of instruments) {
  const row = document.createElement("tr");
  const name = document.createElement("td");
  name.innerHTML = "<strong></strong><br><span class='muted'></span>";
  name.querySelector("strong").textContent = inst.symbol;
  name.querySelector("span").textContent = inst.name;
  const px = document.createElement("td");
  px.className = "px";
  px.textContent = inst.price.toString();
  row.append(name, px);
  row.addEventListener("click", () => select(row, inst));
  body.append(row);
}

// Answer "which instrument is selected?" so apps started later can catch up.
weft.subscribe("demo.instrument.query", () => {
  const selected = body.querySelector("tr.selected");
  if (!selected) return;
  selected.click();
});
