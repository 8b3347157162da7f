// window.fdc3 for Weft pages: the official FDC3 Desktop Agent proxy
// (@finos/fdc3-agent-proxy) speaking the standard's Desktop Agent Communication
// Protocol (@finos/fdc3-schema message shapes) over Weft's page bridge.
//
// Bundled by `npm run build` (esbuild) into dist/weft-fdc3.js, which the app host
// injects with the bridge at document start: the bridge calls `install` with a
// transport bound to its per-page-load secret. Nothing here is a security check: the
// Rust agent validates every message and sets its source from the connection.
import {
  AbstractMessaging,
  DefaultAppSupport,
  DefaultChannelSupport,
  DefaultHeartbeatSupport,
  DefaultIntentSupport,
  DesktopAgentProxy,
} from "@finos/fdc3-agent-proxy";

// How long an exchange with the agent may take, and one that may launch an app
// (`open`, `raiseIntent`): intent results may come a minute or more later.
const MESSAGE_EXCHANGE_TIMEOUT_MS = 15000;
const APP_LAUNCH_TIMEOUT_MS = 120000;

function uuid() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

class WeftMessaging extends AbstractMessaging {
  constructor(transport, appIdentifier) {
    super(appIdentifier);
    this.transport = transport;
    this.listeners = new Map();
    transport.onMessage((message) => {
      for (const listener of Array.from(this.listeners.values())) {
        if (listener.filter(message)) listener.action(message);
      }
    });
  }

  createUUID() {
    return uuid();
  }

  async post(message) {
    this.transport.post(message);
  }

  register(listener) {
    this.listeners.set(listener.id, listener);
  }

  unregister(id) {
    this.listeners.delete(id);
  }

  createMeta() {
    return {
      requestUuid: this.createUUID(),
      timestamp: new Date(),
      source: this.getAppIdentifier(),
    };
  }

  async disconnect() {
    this.transport.post({ type: "WCP6Goodbye", meta: { timestamp: new Date() } });
  }
}

// The agent resolves intents and shows the channel selector itself, in Weft windows
// over the app; the page shows neither.
const agentResolvesIntents = {
  async connect() {},
  async disconnect() {},
  async chooseIntent() {
    return undefined;
  },
};
const agentSelectsChannels = {
  async connect() {},
  async disconnect() {},
  async updateChannel() {},
  setChannelChangeCallback() {},
};

// Defines window.fdc3 and fires `fdc3Ready`. `transport` is `{post(message),
// onMessage(handler)}`; `identity` is `{appId, instanceId}`.
export function install(transport, identity) {
  const messaging = new WeftMessaging(transport, {
    appId: identity.appId,
    instanceId: identity.instanceId,
  });
  const heartbeat = new DefaultHeartbeatSupport(messaging);
  const channels = new DefaultChannelSupport(
    messaging,
    agentSelectsChannels,
    MESSAGE_EXCHANGE_TIMEOUT_MS,
  );
  const intents = new DefaultIntentSupport(
    messaging,
    agentResolvesIntents,
    MESSAGE_EXCHANGE_TIMEOUT_MS,
    APP_LAUNCH_TIMEOUT_MS,
  );
  const apps = new DefaultAppSupport(messaging, MESSAGE_EXCHANGE_TIMEOUT_MS, APP_LAUNCH_TIMEOUT_MS);
  const agent = new DesktopAgentProxy(
    heartbeat,
    channels,
    intents,
    apps,
    [heartbeat, agentResolvesIntents, agentSelectsChannels],
    null,
  );
  Object.defineProperty(window, "fdc3", {
    value: agent,
    writable: false,
    configurable: false,
    enumerable: true,
  });
  // `fdc3Ready` fires once the proxy is connected and the document parsed, so that
  // page scripts waiting for it (rather than checking window.fdc3 first, as getAgent()
  // does) hear it too.
  const parsed =
    document.readyState === "loading"
      ? new Promise((resolve) => document.addEventListener("DOMContentLoaded", resolve, { once: true }))
      : Promise.resolve();
  Promise.all([agent.connect(), parsed]).then(
    () => window.dispatchEvent(new Event("fdc3Ready")),
    (e) => console.error("weft: the FDC3 agent did not connect:", e),
  );
  window.addEventListener("pagehide", (event) => {
    if (!event.persisted) messaging.disconnect();
  });
  return agent;
}
