"""WeCom 会话内容存档 (chat archive): pulling encrypted chat records and opening them.

WeCom hands out archived chats only through its "finance" SDK: ``GetChatData(seq, limit)``
answers records after ``seq``, each with a fresh random key RSA-encrypted (PKCS#1 v1.5) with the
company's public key of version ``publickey_ver``, and the message encrypted with that random
key by a cipher internal to the SDK (``DecryptData``). Opening the random key with the company's
private key is ours whichever source serves the records:

- ``NativeSdkSource``: ctypes over WeCom's ``libWeWorkFinanceSdk_C.so`` (as its C header declares);
- ``SimulatorSource``: our WeCom simulator's ``sim/finance/getchatdata`` over HTTP, whose symmetric
  cipher is AES-256-CBC (see ``connectors.wecom.simulator.chat_archive``).

Private keys, random keys and message plaintext never appear in exceptions or logs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ctypes
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_pem_private_key

if TYPE_CHECKING:
    from connectors.wecom.client import WeComClient

SDK_DOWNLOAD = "https://developer.work.weixin.qq.com/document/path/91774"
SIMULATOR_API = "sim/finance/getchatdata"
# WeCom's external contacts (WeChat users) have ids starting with these; staff have plain userids.
EXTERNAL_PREFIXES = ("wm", "wo")

# Return codes of the SDK's functions, from WeWorkFinanceSdk_C.h.
SDK_ERRORS = {
    10000: "invalid parameter",
    10001: "network error",
    10002: "could not parse the data",
    10003: "system failure",
    10004: "encryption failed because of a wrong key",
    10005: "wrong fileid",
    10006: "decryption failed",
    10007: "no private key for the message's key version: upload the key pair again",
    10008: "could not parse encrypt_key",
    10009: "this server's IP is not allowed (add it to the archive's trusted IPs)",
    10010: "the data has expired",
    10011: "certificate error",
}


class ArchiveError(Exception):
    """The chat archive could not be pulled or opened; the pull is retried later."""


class ArchiveKeyError(ArchiveError):
    """A private key file is missing or is not an unencrypted RSA private key in PEM."""


class ArchiveDecryptError(ArchiveError):
    """A record did not decrypt: the wrong private key for its publickey_ver, or corrupt data."""


class ArchiveSdkError(ArchiveError):
    """The native SDK is missing or one of its calls failed."""


@dataclass(frozen=True)
class EncryptedChat:
    """One ``chatdata`` entry of GetChatData, still encrypted."""

    seq: int
    msgid: str
    publickey_ver: int
    encrypt_random_key: str
    encrypt_chat_msg: str

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> EncryptedChat:
        try:
            return cls(seq=int(entry["seq"]), msgid=str(entry["msgid"]), publickey_ver=int(entry.get("publickey_ver") or 0),
                       encrypt_random_key=str(entry["encrypt_random_key"]), encrypt_chat_msg=str(entry["encrypt_chat_msg"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"malformed chatdata entry (missing or bad {exc})") from None


class ChatArchiveSource(Protocol):
    """Where encrypted chat records come from and how their messages open once the random key is known."""

    async def get_chat_data(self, seq: int, limit: int) -> list[EncryptedChat]:
        """Records with a seq above ``seq``, oldest first, at most ``limit``."""
        ...

    def decrypt(self, random_key: str, encrypted: str) -> dict[str, Any]:
        """The message JSON; blocking CPU work, so callers run it off the event loop."""
        ...

    def close(self) -> None: ...


def chats_from_response(body: dict[str, Any]) -> list[EncryptedChat]:
    """GetChatData's answer (errcode, errmsg, chatdata) to records; errcode != 0 raises."""
    if not isinstance(body, dict) or body.get("errcode", 0) != 0:
        errcode = body.get("errcode") if isinstance(body, dict) else None
        errmsg = body.get("errmsg", "") if isinstance(body, dict) else ""
        raise ArchiveError(f"GetChatData answered errcode {errcode}: {errmsg}")
    return [EncryptedChat.from_json(entry) for entry in body.get("chatdata") or []]


# -- the company's private keys ------------------------------------------------------------------

def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key from a PEM file; the error names the file, never its content."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ArchiveKeyError(f"cannot read the archive private key {path}: {exc.strerror}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ArchiveKeyError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ArchiveKeyError(f"{path} holds a {type(key).__name__.lstrip('_')}, not an RSA private key")
    return key


@dataclass(frozen=True)
class ArchiveKeys:
    """The company's RSA private keys: one per public key version uploaded to WeCom, plus a default.

    After a key rotation WeCom still serves older records under their old ``publickey_ver``, so
    those versions keep their own key; any other version uses ``default``."""

    default: rsa.RSAPrivateKey
    by_version: Mapping[int, rsa.RSAPrivateKey] = field(default_factory=dict)

    @classmethod
    def from_files(cls, default: Path, by_version: Mapping[int, Path] | None = None) -> ArchiveKeys:
        return cls(load_private_key(default), {ver: load_private_key(p) for ver, p in (by_version or {}).items()})

    def random_key(self, chat: EncryptedChat) -> str:
        """Open ``encrypt_random_key`` (base64, RSA PKCS#1 v1.5).

        OpenSSL answers a wrong key with random bytes rather than an error (implicit rejection), so
        the result is checked to be the printable text the SDK hands to DecryptData as a C string."""
        key = self.by_version.get(chat.publickey_ver, self.default)
        try:
            opened = key.decrypt(base64.b64decode(chat.encrypt_random_key, validate=True), padding.PKCS1v15())
            text = opened.decode("ascii")
        except (binascii.Error, ValueError):
            text = ""
        if not text or not text.isprintable():
            raise ArchiveDecryptError(
                f"the random key of msgid {chat.msgid} (seq {chat.seq}, publickey_ver {chat.publickey_ver}) does not "
                "open with the configured private key: check SCRM_ARCHIVE_PRIVATE_KEY_FILE, or list that version's "
                "key in SCRM_ARCHIVE_PRIVATE_KEYS after a key rotation")
        return text


def open_chat(source: ChatArchiveSource, keys: ArchiveKeys, chat: EncryptedChat) -> dict[str, Any]:
    """The decrypted message of one record (blocking: RSA and the symmetric cipher)."""
    message = source.decrypt(keys.random_key(chat), chat.encrypt_chat_msg)
    if not isinstance(message, dict) or str(message.get("msgid", chat.msgid)) != chat.msgid:
        raise ArchiveDecryptError(f"record seq {chat.seq} decrypted to something other than message {chat.msgid}")
    return message


# -- the decrypted message -------------------------------------------------------------------------

def is_external(userid: str) -> bool:
    return userid.startswith(EXTERNAL_PREFIXES)


@dataclass(frozen=True)
class ArchivedMessage:
    """A decrypted archive message: who wrote to whom, when, and what.

    ``action`` is send, recall (a message was withdrawn) or switch (a staff member switched
    company; no sender, no recipients)."""

    msg_id: str
    action: str
    sender: str
    recipients: list[str]
    room_id: str
    msg_type: str
    body: dict[str, Any]
    sent_at: datetime

    @property
    def externals(self) -> list[str]:
        return [u for u in [self.sender, *self.recipients] if is_external(u)]

    @property
    def staff(self) -> list[str]:
        return [u for u in [self.sender, *self.recipients] if u and not is_external(u)]


def normalize_archive_message(msg: dict[str, Any]) -> ArchivedMessage:
    msg_type = str(msg.get("msgtype", "") or msg.get("action", ""))
    body = msg.get(msg_type)
    millis = msg.get("msgtime", msg.get("time"))
    try:
        sent_at = datetime.fromtimestamp(int(millis) / 1000, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        sent_at = datetime.now(timezone.utc)
    tolist = msg.get("tolist")
    return ArchivedMessage(
        msg_id=str(msg.get("msgid", "")),
        action=str(msg.get("action", "")),
        sender=str(msg.get("from", "") or ""),
        recipients=[str(u) for u in tolist] if isinstance(tolist, list) else [],
        room_id=str(msg.get("roomid", "") or ""),
        msg_type=msg_type,
        body=body if isinstance(body, dict) else {},
        sent_at=sent_at,
    )


# -- sources --------------------------------------------------------------------------------------

class SimulatorSource:
    """Our WeCom simulator's stand-in for the SDK, reached with an access token of the archive secret.

    The simulator encrypts each message as ``base64(iv ‖ AES-256-CBC(PKCS#7(message JSON)))`` with
    the 32 bytes that the random key (base64 text) decodes to; ``decrypt`` mirrors that."""

    def __init__(self, client: WeComClient) -> None:
        self._client = client

    async def get_chat_data(self, seq: int, limit: int) -> list[EncryptedChat]:
        return chats_from_response(await self._client.call("POST", SIMULATOR_API, json={"seq": seq, "limit": limit}))

    def decrypt(self, random_key: str, encrypted: str) -> dict[str, Any]:
        try:
            key = base64.b64decode(random_key, validate=True)
            blob = base64.b64decode(encrypted, validate=True)
            if len(key) != 32 or len(blob) < 32 or len(blob) % 16:
                raise ValueError("wrong lengths")
            decryptor = Cipher(algorithms.AES(key), modes.CBC(blob[:16])).decryptor()
            padded = decryptor.update(blob[16:]) + decryptor.finalize()
            unpadder = sym_padding.PKCS7(128).unpadder()
            message = json.loads(unpadder.update(padded) + unpadder.finalize())
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ArchiveDecryptError("encrypt_chat_msg does not decrypt with its random key") from None
        if not isinstance(message, dict):
            raise ArchiveDecryptError("encrypt_chat_msg decrypted to something other than a JSON object")
        return message

    def close(self) -> None:
        """Nothing to release: the HTTP session belongs to the application."""


class _Sdk:
    """The loaded library and its sdk handle (NewSdk + Init done)."""

    def __init__(self, lib_path: Path, corp_id: str, secret: str) -> None:
        try:
            lib = ctypes.CDLL(str(lib_path))
        except OSError as exc:
            raise ArchiveSdkError(
                f"cannot load WeCom's chat archive SDK from {lib_path} ({exc}). Download the C SDK for Linux "
                f"(libWeWorkFinanceSdk_C.so) from {SDK_DOWNLOAD}, install it with its bundled libraries, and set "
                "SCRM_ARCHIVE_SDK_LIB to the .so file") from None
        void_p, char_p = ctypes.c_void_p, ctypes.c_char_p
        for name, restype, argtypes in (
            ("NewSdk", void_p, []),
            ("Init", ctypes.c_int, [void_p, char_p, char_p]),
            ("GetChatData", ctypes.c_int, [void_p, ctypes.c_ulonglong, ctypes.c_uint, char_p, char_p, ctypes.c_int, void_p]),
            ("DecryptData", ctypes.c_int, [char_p, char_p, void_p]),
            ("NewSlice", void_p, []),
            ("FreeSlice", None, [void_p]),
            ("GetContentFromSlice", void_p, [void_p]),
            ("GetSliceLen", ctypes.c_int, [void_p]),
            ("DestroySdk", None, [void_p]),
        ):
            try:
                function = getattr(lib, name)
            except AttributeError:
                raise ArchiveSdkError(f"{lib_path} has no {name}(): is it libWeWorkFinanceSdk_C.so?") from None
            function.restype, function.argtypes = restype, argtypes
        self.lib = lib
        self.handle = lib.NewSdk()
        if not self.handle:
            raise ArchiveSdkError("NewSdk() returned NULL")
        code = lib.Init(self.handle, corp_id.encode(), secret.encode())
        if code != 0:
            lib.DestroySdk(self.handle)
            raise ArchiveSdkError(f"Init failed with {code} ({SDK_ERRORS.get(code, 'unknown error')}): "
                                  "check SCRM_WECOM_CORP_ID and SCRM_WECOM_ARCHIVE_SECRET")

    def call_into_slice(self, what: str, call) -> bytes:
        """Run one SDK call that fills a Slice_t; its bytes, with the slice always freed."""
        piece = self.lib.NewSlice()
        try:
            code = call(piece)
            if code != 0:
                raise ArchiveSdkError(f"{what} failed with {code} ({SDK_ERRORS.get(code, 'unknown error')})")
            content, length = self.lib.GetContentFromSlice(piece), self.lib.GetSliceLen(piece)
            return ctypes.string_at(content, length) if content and length > 0 else b""
        finally:
            self.lib.FreeSlice(piece)


class NativeSdkSource:
    """WeCom's own SDK through ctypes; the library loads, and the SDK initialises, on first use.

    The SDK's calls block (GetChatData does network I/O), so ``get_chat_data`` runs them in a
    thread, one at a time."""

    def __init__(self, lib_path: Path, *, corp_id: str, secret: str, timeout: int = 10,
                 proxy: str = "", proxy_password: str = "") -> None:
        self._lib_path, self._corp_id, self._secret = Path(lib_path), corp_id, secret
        self._timeout, self._proxy, self._proxy_password = timeout, proxy, proxy_password
        self._sdk: _Sdk | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> _Sdk:
        if self._sdk is None:
            self._sdk = _Sdk(self._lib_path, self._corp_id, self._secret)
        return self._sdk

    async def get_chat_data(self, seq: int, limit: int) -> list[EncryptedChat]:
        return chats_from_response(json.loads(await asyncio.to_thread(self._get_chat_data, seq, limit)))

    def _get_chat_data(self, seq: int, limit: int) -> bytes:
        with self._lock:
            sdk = self._loaded()
            return sdk.call_into_slice("GetChatData", lambda piece: sdk.lib.GetChatData(
                sdk.handle, seq, limit, self._proxy.encode() or None, self._proxy_password.encode() or None,
                self._timeout, piece))

    def decrypt(self, random_key: str, encrypted: str) -> dict[str, Any]:
        with self._lock:
            sdk = self._loaded()
        try:
            plain = sdk.call_into_slice("DecryptData", lambda piece: sdk.lib.DecryptData(
                random_key.encode(), encrypted.encode(), piece))
        except ArchiveSdkError as exc:
            raise ArchiveDecryptError(str(exc)) from None
        try:
            return json.loads(plain)
        except ValueError:
            raise ArchiveDecryptError("DecryptData answered something other than JSON") from None

    def close(self) -> None:
        with self._lock:
            if self._sdk is not None:
                self._sdk.lib.DestroySdk(self._sdk.handle)
                self._sdk = None
