// Shows headlines for the instrument the watchlist selects.
"use strict";

const items = document.getElementById("items");
document.getElementById("who").textContent = weft.identity.instanceId;

const templates = [
  "{name} edges higher as traders weigh central bank signals",
  "Analysts revise {symbol} targets after a volatile session",
  "{symbol} volumes climb ahead of key data",
  "Options market prices a wider range for {name}",
];

function show(inst, meta) {
  document.getElementById("title").textContent = "News — " + inst.symbol;
  items.replaceChildren();
  templates.forEach((t, i) => {
    const li = document.createElement("li");
    const when = document.createElement("time");
    when.textContent = new Date(meta.ts - i * 17 * 60000).toLocaleTimeString();
    li.append(when, t.replace("{name}", inst.name).replace("{symbol}", inst.symbol));
    items.append(li);
  });
}

function showRange(range) {
  let line = document.getElementById("range");
  if (!line) {
    line = document.createElement("p");
    line.id = "range";
    line.className = "muted";
    items.before(line);
  }
  line.textContent =
    "Chart range for " + range.symbol + ": " + range.low.toPrecision(6) + " – " + range.high.toPrecision(6);
}

weft.subscribe("demo.instrument.selected", show);
weft.subscribe("demo.chart.range", showRange);
