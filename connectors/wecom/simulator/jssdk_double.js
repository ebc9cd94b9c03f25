/* The WeCom simulator's stand-in for Tencent's JS-SDK (jweixin + jwxwork): the few calls the pages make,
 * answered the way WeCom's client answers them. The simulator checks the agentConfig signature against the
 * tickets it issued (ticket/get?type=agent_config) and knows which customer chat's toolbar is open; see
 * connectors/wecom/simulator/oauth.py. Loaded only where SCRM_PAGE_JSSDK_URLS points at a simulator. */
(function () {
  "use strict";
  var SIMULATOR = __SIMULATOR_ORIGIN__;
  var registered = null; // the jsApiList of a successful agentConfig

  function post(path, body) {
    // text/plain keeps the cross-origin request simple (no preflight); the simulator reads JSON from it
    return fetch(SIMULATOR + path, {method: "POST", headers: {"Content-Type": "text/plain"},
                                    body: JSON.stringify(body)}).then(function (r) { return r.json(); });
  }

  function pageUrl() {
    return window.location.href.split("#")[0];
  }

  window.wx = {
    agentConfig: function (options) {
      var fields = {corpid: options.corpid, agentid: options.agentid, timestamp: options.timestamp,
                    nonceStr: options.nonceStr, signature: options.signature, jsApiList: options.jsApiList || [],
                    url: pageUrl()};
      post("/sim/jssdk/agent_config", fields).then(function (res) {
        if (res.errMsg === "agentConfig:ok") {
          registered = fields.jsApiList.slice();
          if (options.success) options.success(res);
        } else if (options.fail) {
          options.fail(res);
        }
        if (options.complete) options.complete(res);
      }, function () {
        var res = {errMsg: "agentConfig:fail"};
        if (options.fail) options.fail(res);
        if (options.complete) options.complete(res);
      });
    },
    invoke: function (name, params, callback) {
      post("/sim/jssdk/invoke", {name: name, params: params || {}, configured: registered !== null,
                                 jsApiList: registered || []})
        .then(callback, function () { callback({err_msg: name + ":fail"}); });
    }
  };
})();
