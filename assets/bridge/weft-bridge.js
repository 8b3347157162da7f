// Weft's page bridge: defines `window.weft` and `window.fdc3` before any page script
// runs.
//
// The host wraps this file as `(<this function>)(identity, weftFdc3, restoredState)` —
// `weftFdc3` being the FDC3 Desktop Agent proxy bundle (assets/fdc3), in the same
// function scope, and `restoredState` the page's state from a restored layout — and
// injects it into the top frame of every page at document start. Every message to the host carries `secret`, a
// random value made here at each page load and kept only in this closure: frames and
// page scripts can reach the host's message handler, but cannot sign messages, and the
// host drops whatever arrives without the secret. Nothing here is a security check;
// the host and the broker check everything again in Rust.
(function (identity, fdc3Proxy, restoredState) {
  "use strict";
  if (Object.prototype.hasOwnProperty.call(window, "weft")) {
    return;
  }
  // A child window of the app (its page's `window.open` of the app's own pages) uses
  // its opener's bridge: one app, one connection, one identity. (The host shares this
  // script with child windows; a child opened with `noopener` has no way back to its
  // app, and its own hello is refused by the host.)
  let opener = null;
  try {
    if (window.opener && window.opener.location.origin === location.origin && window.opener.weft) {
      opener = window.opener;
    }
  } catch (e) {
    opener = null; // another origin's window
  }
  if (opener) {
    Object.defineProperty(window, "weft", { value: opener.weft, enumerable: true });
    Object.defineProperty(window, "fdc3", { value: opener.fdc3, enumerable: true });
    // The host closes the child when it goes here (WebKit does not tell it otherwise).
    Object.defineProperty(window, "close", {
      value: function close() {
        location.href = "weft-close:child";
      },
    });
    return;
  }
  const ipc = window.ipc;
  const random = new Uint8Array(16);
  crypto.getRandomValues(random);
  const secret = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");

  // The FDC3 agent's messages reach the proxy one task at a time, as over the
  // MessagePort of the standard's own transport: the proxy registers a listener only
  // once the answer to its request has been processed (promise continuations), so an
  // event right behind that answer must wait for them.
  const fdc3Handlers = []; // the FDC3 proxy's receivers of agent messages
  const fdc3Queue = [];
  const fdc3Tasks = new MessageChannel();
  fdc3Tasks.port1.onmessage = () => {
    const message = fdc3Queue.shift();
    for (const handler of fdc3Handlers) {
      try {
        handler(message);
      } catch (e) {
        console.error("weft: the FDC3 proxy failed on a message", e);
      }
    }
  };
  let nextId = 1;
  const pending = new Map(); // request id -> {resolve, reject}
  const handlers = new Map(); // subscription id -> handler
  const providers = new Map(); // service name -> Map(action -> handler)
  const serviceClients = new Map(); // service name -> Set of disconnect callbacks
  let saveHook = null; // weft.workspace.onSave's callback

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

  function checkString(value, what, code) {
    if (typeof value !== "string") {
      return weftError(code, what + " must be a string, not " + typeof value);
    }
    return null;
  }

  function encode(data) {
    return JSON.stringify(data === undefined ? null : data);
  }

  function identityFilter(value, what) {
    if (!value || typeof value.appId !== "string") {
      throw weftError("InvalidArgument", what + " must be {appId, instanceId?}");
    }
    const filter = { appId: value.appId };
    if (value.instanceId !== undefined) filter.instanceId = String(value.instanceId);
    return filter;
  }

  function timeoutOf(opts, fallback) {
    const t = opts && opts.timeout !== undefined ? Number(opts.timeout) : fallback;
    if (!(t > 0)) throw weftError("InvalidArgument", "timeout must be a positive number of milliseconds");
    return Math.ceil(t);
  }

  // The traceparent of the message whose handler is running, if traced: what the page
  // sends meanwhile continues that trace. It lasts for the handler's synchronous part;
  // after an `await`, pass `{traceparent: meta.traceparent}` explicitly.
  let currentTrace;
  // Checks a subscription's replay point: exactly one of last, since, afterSeq, each a
  // whole number.
  function replayPoint(r) {
    const keys = typeof r === "object" ? Object.keys(r) : [];
    const known = ["last", "since", "afterSeq"];
    if (keys.length !== 1 || !known.includes(keys[0]) || !Number.isSafeInteger(r[keys[0]]) || r[keys[0]] < 0) {
      throw weftError("InvalidArgument", "opts.replay is {last: N}, {since: msSinceEpoch} or {afterSeq: n}");
    }
    return { [keys[0]]: r[keys[0]] };
  }

  function withTrace(meta, run) {
    const outer = currentTrace;
    currentTrace = meta ? meta.traceparent : undefined;
    try {
      return run();
    } finally {
      currentTrace = outer;
    }
  }
  function traceOf(opts) {
    return opts && opts.traceparent !== undefined ? String(opts.traceparent) : currentTrace;
  }

  // Answers a request or invocation with whatever `run` returns or throws.
  function answer(call, run) {
    Promise.resolve()
      .then(run)
      .then(
        (value) => post({ t: "respond", call: call, data: encode(value) }),
        (e) =>
          post({
            t: "respond",
            call: call,
            err: {
              code: e && e.code === "NoSuchAction" ? "NoSuchAction" : "HandlerError",
              message: e && e.message ? String(e.message) : String(e),
            },
          }),
      );
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
        if (m.ack) {
          // A durable consumer's message: acknowledged once the handler is done; a
          // throw or a rejected promise has it retried, then dead-lettered.
          const seq = m.meta.seq;
          Promise.resolve()
            .then(() => withTrace(m.meta, () => handler(m.data, m.meta)))
            .then(
              () => post({ t: "ack", sub: m.sub, seq: seq }),
              (e) => post({ t: "ack", sub: m.sub, seq: seq, err: { message: e && e.message ? String(e.message) : String(e) } }),
            );
          continue;
        }
        const call = m.call;
        if (call !== undefined) {
          // A request: the handler's result (or promise) is the answer.
          answer(call, () => withTrace(m.meta, () => handler(m.data, m.meta)));
          continue;
        }
        try {
          withTrace(m.meta, () => handler(m.data, m.meta));
        } catch (e) {
          console.error("weft: a subscription handler threw", e);
        }
      } else if (m.t === "invoke") {
        const actions = providers.get(m.svc);
        const handler = actions && actions.get(m.action);
        answer(m.call, () => {
          if (!handler) throw weftError("NoSuchAction", "no action " + m.action + " in " + m.svc);
          return withTrace(m.meta, () => handler(m.data, m.meta));
        });
      } else if (m.t === "save") {
        // The shell saves a layout: the page's state, from its hook, goes with it.
        const request = m.request;
        Promise.resolve()
          .then(() => (saveHook ? saveHook() : undefined))
          .then(
            (state) => {
              if (state === undefined) return post({ t: "saved", id: request });
              let text;
              try {
                text = encode(state);
              } catch (e) {
                return post({ t: "saved", id: request, err: { message: "onSave returned something that is not JSON: " + e } });
              }
              post({ t: "saved", id: request, data: text });
            },
            (e) => post({ t: "saved", id: request, err: { message: "onSave failed: " + (e && e.message ? e.message : e) } }),
          );
      } else if (m.t === "fdc3") {
        fdc3Queue.push(m.m);
        fdc3Tasks.port2.postMessage(null);
      } else if (m.t === "dropped") {
        // The page fell behind and the host dropped messages for it.
        window.dispatchEvent(new CustomEvent("weft:dropped", { detail: { count: m.count } }));
      } else if (m.t === "svcgone") {
        const callbacks = serviceClients.get(m.svc);
        serviceClients.delete(m.svc);
        if (callbacks) {
          for (const cb of callbacks) {
            try {
              cb();
            } catch (e) {
              console.error("weft: a disconnect handler threw", e);
            }
          }
        }
      }
    }
  }
  Object.defineProperty(window, "__weftHost", { value: receive });

  const rpc = {
    // Offer the service `name`; register actions on the returned provider.
    provide(name) {
      const bad = checkString(name, "the service name", "InvalidTopic");
      if (bad) return Promise.reject(bad);
      if (providers.has(name)) {
        return Promise.reject(weftError("ServiceExists", name + " is already provided by this page"));
      }
      const actions = new Map();
      providers.set(name, actions);
      return request({ t: "provide", svc: name }).then(
        () =>
          Object.freeze({
            register(action, handler) {
              if (typeof action !== "string" || typeof handler !== "function") {
                throw weftError("InvalidArgument", "register(action: string, handler: function)");
              }
              actions.set(action, handler);
            },
            withdraw() {
              providers.delete(name);
              return request({ t: "withdraw", svc: name }).then(() => undefined);
            },
          }),
        (e) => {
          providers.delete(name);
          throw e;
        },
      );
    },

    // Connect to the service `name`; opts.wait waits (up to opts.timeout ms) for a
    // provider that has not started yet.
    connect(name, opts) {
      const bad = checkString(name, "the service name", "InvalidTopic");
      if (bad) return Promise.reject(bad);
      let wait = null;
      try {
        if (opts && opts.wait) wait = timeoutOf(opts, 10000);
      } catch (e) {
        return Promise.reject(e);
      }
      return request({ t: "connect", svc: name, wait: wait }).then(() => {
        const callbacks = serviceClients.get(name) || new Set();
        serviceClients.set(name, callbacks);
        return Object.freeze({
          dispatch(action, payload, dopts) {
            let timeout;
            try {
              timeout = timeoutOf(dopts, 10000);
            } catch (e) {
              return Promise.reject(e);
            }
            const message = {
              t: "dispatch",
              svc: name,
              action: String(action),
              data: encode(payload),
              timeout: timeout,
              tp: traceOf(dopts),
            };
            return request(message).then((reply) => reply.data);
          },
          onDisconnect(cb) {
            if (typeof cb === "function") callbacks.add(cb);
          },
        });
      });
    },
  };

  function secure(action, key, data) {
    const bad = checkString(key, "the key", "InvalidArgument");
    if (bad) return Promise.reject(bad);
    return request({ t: "secure", action: action, key: key, data: data });
  }

  // A sensitive API the shell serves after its permission check.
  function platform(svc, action, args) {
    let text;
    try {
      text = encode(args);
    } catch (e) {
      return Promise.reject(weftError("InvalidArgument", "the arguments are not JSON-serialisable: " + e));
    }
    return request({ t: "platform", svc: svc, action: action, data: text });
  }

  const notificationCallbacks = [];
  let notificationEvents = null; // the subscription to the shell's events, once needed

  // Desktop notifications (permission "notifications"), kept in the notification centre.
  const notificationsApi = Object.freeze({
    // {title, body?, actions?: [{id, title}]} → the notification's id.
    create(options) {
      const o = options || {};
      const bad = checkString(o.title, "the title", "InvalidArgument");
      if (bad) return Promise.reject(bad);
      if (o.body !== undefined && typeof o.body !== "string") {
        return Promise.reject(weftError("InvalidArgument", "the body must be a string"));
      }
      const actions = o.actions === undefined ? [] : o.actions;
      const wellFormed =
        Array.isArray(actions) &&
        actions.length <= 3 &&
        actions.every((a) => a && typeof a.id === "string" && a.id && typeof a.title === "string" && a.title);
      if (!wellFormed) {
        return Promise.reject(weftError("InvalidArgument", "actions are at most 3 of {id, title}, both non-empty strings"));
      }
      const clean = actions.map((a) => ({ id: a.id, title: a.title }));
      return platform("notifications", "create", { title: o.title, body: o.body || "", actions: clean });
    },
    // callback({id, action}) when the user clicks a notification of this page
    // (action "default") or one of its action buttons.
    onAction(callback) {
      if (typeof callback !== "function") throw weftError("InvalidArgument", "onAction takes a function");
      notificationCallbacks.push(callback);
      if (!notificationEvents) {
        notificationEvents = api.subscribe(
          "weft.notifications.events",
          (event) => {
            for (const cb of notificationCallbacks) {
              try {
                cb(event);
              } catch (e) {
                console.error("weft: a notification handler threw", e);
              }
            }
          },
          { from: { appId: "weft-shell" } },
        );
      }
      return notificationEvents.then(() => undefined);
    },
  });

  // The clipboard's text (permission "clipboard").
  const clipboardApi = Object.freeze({
    readText: () => platform("clipboard", "readText", {}),
    writeText(text) {
      if (typeof text !== "string") return Promise.reject(weftError("InvalidArgument", "writeText takes a string"));
      return platform("clipboard", "writeText", { text: text }).then(() => undefined);
    },
  });

  function windowAction(action, extra) {
    return request(Object.assign({ t: "window", action: action }, extra || {}));
  }

  // The page's own window. Each call resolves once the window thread has taken it (the
  // desktop may apply it a moment later); getBounds gives logical pixels.
  const windowApi = Object.freeze({
    focus: () => windowAction("focus").then(() => undefined),
    show: () => windowAction("show").then(() => undefined),
    hide: () => windowAction("hide").then(() => undefined),
    minimize: () => windowAction("minimize").then(() => undefined),
    maximize: () => windowAction("maximize").then(() => undefined),
    restore: () => windowAction("restore").then(() => undefined),
    getBounds: () => windowAction("getBounds"),
    getState: () => windowAction("getState"),
    setBounds(bounds) {
      const b = bounds || {};
      // The host refuses the same (page_gate.rs); checked here too so that the promise
      // is rejected rather than left waiting on a dropped message.
      const within = (v, lo, hi) => typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;
      const side = (v) => within(v, 1, 16384);
      const offset = (v) => within(v, -100000, 100000);
      if (!offset(b.x) || !offset(b.y) || !side(b.width) || !side(b.height)) {
        return Promise.reject(
          weftError(
            "InvalidArgument",
            "setBounds takes {x, y, width, height}: whole numbers, x and y within ±100000, width and height 1 to 16384",
          ),
        );
      }
      const clean = { x: b.x, y: b.y, width: b.width, height: b.height };
      return windowAction("setBounds", { bounds: clean }).then(() => undefined);
    },
    close() {
      post({ t: "close" });
    },
  });

  const api = {
    identity: Object.freeze({ appId: identity.appId, instanceId: identity.instanceId }),

    window: windowApi,
    notifications: notificationsApi,
    clipboard: clipboardApi,

    // Layouts: the state the page wants back when its layout is restored.
    workspace: Object.freeze({
      // `callback()` returns the page's state (any JSON, or a promise of it) when the
      // layout is saved; the last callback registered is used.
      onSave(callback) {
        if (typeof callback !== "function") throw weftError("InvalidArgument", "onSave takes a function");
        saveHook = callback;
      },
      // What onSave returned when this layout was saved; null when not restored.
      restoredState: restoredState === undefined ? null : restoredState,
    }),

    // opts.traceparent: the message this one answers or follows (meta.traceparent of a
    // received message), when not sent from that message's handler.
    publish(topic, data, opts) {
      const bad = checkString(topic, "the topic", "InvalidTopic");
      if (bad) return Promise.reject(bad);
      let text;
      try {
        text = encode(data);
      } catch (e) {
        return Promise.reject(weftError("InvalidPayload", "the data is not JSON-serialisable: " + e));
      }
      let ttl = null;
      if (opts && opts.ttlMs != null) {
        if (!Number.isSafeInteger(opts.ttlMs) || opts.ttlMs < 1) {
          return Promise.reject(weftError("InvalidArgument", "opts.ttlMs is a whole number of milliseconds"));
        }
        ttl = opts.ttlMs;
      }
      return request({ t: "pub", topic: topic, data: text, tp: traceOf(opts), ttl: ttl }).then(() => undefined);
    },

    // Deliver only to `target` ({appId} or {appId, instanceId}).
    send(target, topic, data, opts) {
      const bad = checkString(topic, "the topic", "InvalidTopic");
      if (bad) return Promise.reject(bad);
      let to, text;
      try {
        to = identityFilter(target, "the target");
        text = encode(data);
      } catch (e) {
        return Promise.reject(e.code ? e : weftError("InvalidPayload", "the data is not JSON-serialisable: " + e));
      }
      return request({ t: "send", to: to, topic: topic, data: text, tp: traceOf(opts) }).then(() => undefined);
    },

    // `pattern` is a topic, or a pattern where `*` matches one segment and `#` any
    // number (`fx.*.spot`, `fx.#`). opts.from keeps only messages from that sender.
    // opts.replay — {last: N}, {since: msSinceEpoch} or {afterSeq: n} — first delivers
    // what durable streams stored from that point, in order, then live messages with no
    // gap or duplicate; stored messages carry meta.seq.
    // opts.durable: "name" attaches to this app's durable consumer of that name, which
    // survives restarts: its messages come one at a time, each acknowledged when the
    // handler returns (or its promise resolves); a throw or rejection retries it, then
    // dead-letters it. Delivery is at least once: meta.id is stable for de-duplication.
    // When a message is a request, the handler's return value (or promise) answers it.
    subscribe(pattern, handler, opts) {
      const bad = checkString(pattern, "the pattern", "InvalidTopic");
      if (bad) return Promise.reject(bad);
      if (typeof handler !== "function") {
        return Promise.reject(weftError("InvalidArgument", "the handler must be a function"));
      }
      let from = null;
      let replay = null;
      let durable = null;
      try {
        if (opts && opts.from) from = identityFilter(opts.from, "opts.from");
        if (opts && opts.replay != null) replay = replayPoint(opts.replay);
        if (opts && opts.durable != null) {
          if (typeof opts.durable !== "string" || opts.durable === "") {
            throw weftError("InvalidArgument", "opts.durable is the consumer's name");
          }
          if (from) throw weftError("InvalidArgument", "a durable consumer takes no opts.from");
          durable = opts.durable;
        }
      } catch (e) {
        return Promise.reject(e);
      }
      const sub = nextId++;
      handlers.set(sub, handler);
      return request({ t: "sub", sub: sub, topic: pattern, from: from, replay: replay, durable: durable }).then(
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

    // Ask whoever subscribes to `topic`; resolves with the first answer's data.
    request(topic, data, opts) {
      const bad = checkString(topic, "the topic", "InvalidTopic");
      if (bad) return Promise.reject(bad);
      let timeout, text;
      try {
        timeout = timeoutOf(opts, 10000);
        text = encode(data);
      } catch (e) {
        return Promise.reject(e.code ? e : weftError("InvalidPayload", "the data is not JSON-serialisable: " + e));
      }
      return request({ t: "req", topic: topic, data: text, timeout: timeout, tp: traceOf(opts) }).then(
        (reply) => reply.data,
      );
    },

    rpc: Object.freeze(rpc),

    // Secrets kept encrypted for this app alone (permission "secureStorage": the app
    // must declare it, and the user or the desktop owner allow it; otherwise calls
    // fail with code AccessDenied). Values are any JSON.
    secureStorage: Object.freeze({
      get(key) {
        return secure("get", key);
      },
      set(key, value) {
        let text;
        try {
          text = encode(value);
        } catch (e) {
          return Promise.reject(weftError("InvalidPayload", "the value is not JSON-serialisable: " + e));
        }
        return secure("set", key, text).then(() => undefined);
      },
      delete(key) {
        return secure("delete", key);
      },
      keys() {
        return request({ t: "secure", action: "keys" });
      },
    }),
  };
  Object.defineProperty(window, "weft", { value: Object.freeze(api), enumerable: true });

  post({ t: "hello" });

  // The page's console output and uncaught errors go to the host, which writes them to
  // the app's log file (rate-limited and cut to size there).
  function describe(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) {
      // One line per entry: the message, then the stack's frames.
      const frames = value.stack ? String(value.stack).trim().split("\n").join(" | ") : "";
      return String(value) + (frames ? " | " + frames : "");
    }
    try {
      const json = JSON.stringify(value);
      return json === undefined ? String(value) : json;
    } catch (_) {
      return String(value);
    }
  }
  function forward(level, args) {
    try {
      post({ t: "log", level: level, msg: Array.from(args, describe).join(" ") });
    } catch (_) {
      // Logging must never break the page.
    }
  }
  for (const level of ["debug", "log", "info", "warn", "error"]) {
    const original = console[level];
    console[level] = function () {
      forward(level, arguments);
      return original.apply(console, arguments);
    };
  }
  window.addEventListener("error", (e) => {
    const where = e.filename ? " at " + e.filename + ":" + e.lineno + ":" + e.colno : "";
    forward("error", ["uncaught " + describe(e.error || e.message) + where]);
  });
  window.addEventListener("unhandledrejection", (e) => {
    forward("error", ["unhandled promise rejection: " + describe(e.reason)]);
  });

  // window.close() closes the app, as closing its window does. (WebKit ignores it in a
  // window that no script opened.)
  Object.defineProperty(window, "close", {
    value: function close() {
      post({ t: "close" });
    },
    writable: false,
    configurable: false,
  });

  // window.fdc3: the official proxy, over this bridge to the Rust agent.
  if (fdc3Proxy) {
    fdc3Proxy.install(
      {
        post(message) {
          post({ t: "fdc3", m: message });
        },
        onMessage(handler) {
          fdc3Handlers.push(handler);
        },
      },
      identity,
    );
  }

  function loaded() {
    post({ t: "ready" });
  }
  if (document.readyState === "complete") loaded();
  else window.addEventListener("load", loaded, { once: true });
});
