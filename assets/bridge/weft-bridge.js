// Weft's page bridge: defines `window.weft` before any page script runs.
//
// The host wraps this file as `(<this function>)(identity)` and injects it into the top
// frame of every page at document start. Every message to the host carries `secret`, a
// random value made here at each page load and kept only in this closure: frames and
// page scripts can reach the host's message handler, but cannot sign messages, and the
// host drops whatever arrives without the secret. Nothing here is a security check;
// the host and the broker check everything again in Rust.
(function (identity) {
  "use strict";
  if (Object.prototype.hasOwnProperty.call(window, "weft")) {
    return;
  }
  const ipc = window.ipc;
  const random = new Uint8Array(16);
  crypto.getRandomValues(random);
  const secret = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");

  let nextId = 1;
  const pending = new Map(); // request id -> {resolve, reject}
  const handlers = new Map(); // subscription id -> handler

  function post(message) {
    message.s = secret;
    ipc.postMessage(JSON.stringify(message));
  }

  function weftError(code, message) {
    const error = new Error(message);
    error.name = "WeftError";
    error.code = code;
    return error;
  }

  function request(message) {
    return new Promise((resolve, reject) => {
      const id = nextId++;
      message.id = id;
      pending.set(id, { resolve, reject });
      try {
        post(message);
      } catch (e) {
        pending.delete(id);
        reject(weftError("NotConnected", "cannot reach the Weft host: " + e));
      }
    });
  }

  function checkTopic(topic) {
    if (typeof topic !== "string") {
      return weftError("InvalidTopic", "the topic must be a string, not " + typeof topic);
    }
    return null;
  }

  // Called by the host with a batch of messages; not enumerable, not replaceable.
  function receive(batch) {
    for (const m of batch) {
      if (m.t === "res") {
        const p = pending.get(m.id);
        if (!p) continue;
        pending.delete(m.id);
        if (m.err) p.reject(weftError(m.err.code, m.err.message));
        else p.resolve(m.value);
      } else if (m.t === "msg") {
        const handler = handlers.get(m.sub);
        if (!handler) continue;
        try {
          handler(m.data, m.meta);
        } catch (e) {
          console.error("weft: a subscription handler threw", e);
        }
      }
    }
  }
  Object.defineProperty(window, "__weftHost", { value: receive });

  const api = {
    identity: Object.freeze({ appId: identity.appId, instanceId: identity.instanceId }),

    publish(topic, data) {
      const bad = checkTopic(topic);
      if (bad) return Promise.reject(bad);
      let text;
      try {
        text = JSON.stringify(data === undefined ? null : data);
      } catch (e) {
        return Promise.reject(weftError("InvalidPayload", "the data is not JSON-serialisable: " + e));
      }
      return request({ t: "pub", topic: topic, data: text }).then(() => undefined);
    },

    // `pattern` is a topic, or a pattern where `*` matches one segment and `#` any
    // number (`fx.*.spot`, `fx.#`).
    subscribe(topic, handler) {
      const bad = checkTopic(topic);
      if (bad) return Promise.reject(bad);
      if (typeof handler !== "function") {
        return Promise.reject(weftError("InvalidArgument", "the handler must be a function"));
      }
      const sub = nextId++;
      handlers.set(sub, handler);
      return request({ t: "sub", sub: sub, topic: topic }).then(
        () =>
          Object.freeze({
            unsubscribe() {
              if (!handlers.delete(sub)) return Promise.resolve();
              return request({ t: "unsub", sub: sub }).then(() => undefined);
            },
          }),
        (e) => {
          handlers.delete(sub);
          throw e;
        },
      );
    },
  };
  Object.defineProperty(window, "weft", { value: Object.freeze(api), enumerable: true });

  post({ t: "hello" });
  function loaded() {
    post({ t: "ready" });
  }
  if (document.readyState === "complete") loaded();
  else window.addEventListener("load", loaded, { once: true });
});
