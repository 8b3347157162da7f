// A test page's use of the standard's own getAgent() (@finos/fdc3-get-agent): what an
// FDC3 app written for any Desktop Agent does first. Bundled by build.mjs into
// tests/fixtures/fdc3/get-agent.js; the page loads it before its own scripts.
import { getAgent } from "@finos/fdc3-get-agent";

const started = performance.now();
window.getAgentOutcome = getAgent().then(
  (agent) => ({ same: agent === window.fdc3, ms: performance.now() - started }),
  (e) => ({ error: String(e && e.message ? e.message : e) }),
);
