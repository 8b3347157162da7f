// Draws a (simulated) intraday price path for the instrument the watchlist selects.
"use strict";

const canvas = document.getElementById("chart");
const ctx = canvas.getContext("2d");
document.getElementById("who").textContent = weft.identity.instanceId;

// A deterministic pseudo-random walk per symbol, so the same symbol draws the same path.
function path(symbol, start) {
  let seed = 0;
  for (const ch of symbol) seed = (seed * 31 + ch.charCodeAt(0)) >>> 0;
  const points = [];
  let price = start;
  for (let i = 0; i < 120; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    price *= 1 + ((seed / 2 ** 32) - 0.5) * 0.004;
    points.push(price);
  }
  return points;
}

function draw(inst) {
  const points = path(inst.symbol, inst.price);
  const lo = Math.min(...points), hi = Math.max(...points);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = points[points.length - 1] >= points[0] ? "#3fb27f" : "#e5534b";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((p, i) => {
    const x = (i / (points.length - 1)) * (canvas.width - 20) + 10;
    const y = canvas.height - 10 - ((p - lo) / (hi - lo || 1)) * (canvas.height - 20);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  document.getElementById("title").textContent = "Chart — " + inst.symbol;
  document.getElementById("hint").textContent =
    inst.name + ": " + lo.toPrecision(6) + " – " + hi.toPrecision(6);
  // Share the day's range: the news app shows it beside the headlines.
  weft.publish("demo.chart.range", { symbol: inst.symbol, low: lo, high: hi });
}

weft
  .subscribe("demo.instrument.selected", (data) => draw(data))
  .then(() => weft.publish("demo.instrument.query", {}));
