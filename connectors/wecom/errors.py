"""Typed errors for WeCom API errcodes.

Callers decide what to do by exception type (and ``retryable``), never by errcode::

    WeComError                      unknown errcode, not retryable
    ├── TokenExpiredError           40014 / 41001 / 42001 / 40082 / 42009: refresh the token, retry once
    ├── RateLimitedError            45009 / 45033 / 45011 / -1: back off ``retry_after`` seconds
    ├── InvalidUserError            60111 / 40003 / 40031 / 46004 / 81013 / 84061 / 40096: recipient is gone
    ├── KfWindowClosedError         95001 / 95002 / 95013 / 95018: 微信客服 reply window closed
    ├── WelcomeCodeInvalidError     41049 / 41050: the welcome_code is missing, expired (20 s) or unknown
    ├── WelcomeAlreadySentError     41051: a welcome already reached the customer (or they are chatting)
    ├── WelcomeBusyError            41096: another app is sending its welcome now; may retry shortly
    ├── GroupChatGoneError          40050: the customer group (客户群) does not exist, or was dismissed
    └── WeComUnavailableError       -2 (network, timeout, HTTP 5xx, non-JSON body): retry later
    (an HTTP 4xx is a plain WeComError with errcode -3)

Sources: WeCom 全局错误码 (developer.work.weixin.qq.com/document/path/90313) as mirrored in
xen0n/go-workwx ``errcodes/mod.go``. The kf codes: 95001 "发送客服消息次数限制" (at most 5 messages
after the customer's last message), 95002 "发送客服消息时间限制" (48 h after it), 95013 "会话已经结束",
95018 "send msg session status invalid" (session state does not allow API sends, or older than 48 h).
Welcome codes (externalcontact/send_welcome_msg, document/path/92599): usable within 20 s of the
add_external_contact event and once only; 41050 "无效的欢迎语code" (expired or unknown), 41051
"客户和服务人员已经开始聊天了" (the docs: the welcome was delivered, do not retry), 41096 "欢迎语已在发送中"
(another app called first; its send may still fail, so a retry is allowed). 40098 "成员尚未实名认证" and
41054 "该用户尚未激活" reject staff a 「联系我」 code cannot use.
"""

from __future__ import annotations

#: Sentinel errcode for failures that never reached a WeCom answer: connection errors,
#: timeouts, HTTP 5xx and bodies that are not a JSON object. WeCom itself never uses -2.
UNAVAILABLE_ERRCODE = -2
#: Sentinel errcode for an HTTP status other than 200 below 500 (wrong api_base, proxy
#: refusing): not retryable, since repeating the same request will not fix it.
UNEXPECTED_HTTP_ERRCODE = -3

TOKEN_ERRCODES = frozenset({40014, 41001, 42001, 40082, 42009})
RATE_LIMIT_RETRY_AFTER: dict[int, float] = {
    -1: 1.0,  # 系统繁忙: WeCom advises up to 3 retries "稍候"
    45009: 60.0,  # 接口调用超过限制: minute/hour/day quotas, a minute is the shortest window
    45011: 1.0,  # API调用太频繁
    45033: 1.0,  # 接口并发调用超过限制: lower the concurrency and try again
}
INVALID_USER_ERRCODES = frozenset({40003, 40031, 40096, 40098, 41054, 46004, 60111, 81013, 84061})
WELCOME_CODE_INVALID_ERRCODES = frozenset({41049, 41050})
WELCOME_ALREADY_SENT_ERRCODE = 41051
WELCOME_BUSY_ERRCODE = 41096
KF_WINDOW_ERRCODES = frozenset({95001, 95002, 95013, 95018})
GROUP_CHAT_GONE_ERRCODE = 40050  # "chatid不存在": externalcontact/groupchat/get of a dismissed or unknown group


class WeComError(Exception):
    """A WeCom API call answered ``errcode != 0`` (or never answered, see subclasses)."""

    retryable_default = False

    def __init__(self, errcode: int, errmsg: str, api: str) -> None:
        super().__init__(f"{api}: errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later without changing it."""
        return self.retryable_default


class TokenExpiredError(WeComError):
    """The access token is invalid or expired; the client refreshes and retries once."""

    retryable_default = True


class RateLimitedError(WeComError):
    """WeCom throttled the call or is busy; wait ``retry_after`` seconds before retrying."""

    retryable_default = True

    def __init__(self, errcode: int, errmsg: str, api: str, *, retry_after: float | None = None) -> None:
        super().__init__(errcode, errmsg, api)
        self.retry_after = retry_after if retry_after is not None else RATE_LIMIT_RETRY_AFTER.get(errcode, 1.0)


class InvalidUserError(WeComError):
    """The staff userid or external_userid does not exist or is out of the app's scope."""


class KfWindowClosedError(WeComError):
    """微信客服 may answer only within 48 h of the customer's last message, at most 5 times."""


class WelcomeCodeInvalidError(WeComError):
    """The welcome_code expired (WeCom allows 20 s) or never existed; retrying cannot bring it back."""


class WelcomeAlreadySentError(WeComError):
    """A welcome already reached the customer (or they started chatting): nothing more to send."""


class WelcomeBusyError(WeComError):
    """Another app is sending its welcome for this code; it may fail, so try again in a moment."""

    retryable_default = True
    retry_after = 2.0


class GroupChatGoneError(WeComError):
    """groupchat/get knows no such customer group: it was dismissed, or never visible to the app."""


class WeComUnavailableError(WeComError):
    """No usable answer from WeCom (network, timeout, HTTP 5xx); errcode is ``UNAVAILABLE_ERRCODE``."""

    retryable_default = True

    def __init__(self, errmsg: str, api: str, *, errcode: int = UNAVAILABLE_ERRCODE) -> None:
        super().__init__(errcode, errmsg, api)


def error_for(errcode: int, errmsg: str, api: str) -> WeComError:
    """Build the typed exception for a WeCom answer with ``errcode != 0``."""
    if errcode in TOKEN_ERRCODES:
        return TokenExpiredError(errcode, errmsg, api)
    if errcode in RATE_LIMIT_RETRY_AFTER:
        return RateLimitedError(errcode, errmsg, api)
    if errcode in INVALID_USER_ERRCODES:
        return InvalidUserError(errcode, errmsg, api)
    if errcode in KF_WINDOW_ERRCODES:
        return KfWindowClosedError(errcode, errmsg, api)
    if errcode in WELCOME_CODE_INVALID_ERRCODES:
        return WelcomeCodeInvalidError(errcode, errmsg, api)
    if errcode == WELCOME_ALREADY_SENT_ERRCODE:
        return WelcomeAlreadySentError(errcode, errmsg, api)
    if errcode == WELCOME_BUSY_ERRCODE:
        return WelcomeBusyError(errcode, errmsg, api)
    if errcode == GROUP_CHAT_GONE_ERRCODE:
        return GroupChatGoneError(errcode, errmsg, api)
    if errcode == UNAVAILABLE_ERRCODE:
        return WeComUnavailableError(errmsg, api)
    return WeComError(errcode, errmsg, api)
