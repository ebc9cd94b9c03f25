"""WeCom callback signature and encryption, on top of wechatpy's AES/PKCS#7 code.

What this module adds to wechatpy: a constant-time signature check done before any
decryption, XML parsing that refuses DTDs and entities (outer envelope and decrypted
message alike), and a small error tree the HTTP endpoint maps to status codes::

    CallbackCryptoError
    ├── SignatureError            -> 403 (msg_signature does not match)
    └── MalformedCallbackError    -> 400 (bad XML, DTD/entities, no Encrypt, bad base64/padding, wrong receive id)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
from xml.parsers import expat

from wechatpy.utils import WeChatSigner
from wechatpy.work.crypto import PrpCrypto
from wechatpy.work.exceptions import InvalidCorpIdException

_AES_BLOCK = 16


class CallbackCryptoError(Exception):
    """Base for every refused callback."""


class SignatureError(CallbackCryptoError):
    """msg_signature does not match token/timestamp/nonce/ciphertext."""


class MalformedCallbackError(CallbackCryptoError):
    """The callback is signed correctly (or could not be checked) but cannot be read."""


def parse_plaintext_xml(text: str) -> dict[str, str]:
    """Flatten a decrypted ``<xml>...</xml>`` message into ``{element name: text}``.

    Nested elements become dotted paths (``SendLocationInfo.Location_X``); a path that
    repeats gets ``#2``, ``#3`` ... suffixes so nothing is silently dropped. CDATA is
    unwrapped and text is kept exactly (no stripping: chat content may start with spaces).
    WeCom's messages are a few levels deep with a few dozen fields; anything far beyond that is
    refused rather than walked (deep nesting or a flood of siblings would cost a worker dearly).
    """
    root, fields = _flat_xml(text)
    if root != "xml":
        raise MalformedCallbackError(f"root element is <{root}>, expected <xml>")
    return fields


MAX_XML_DEPTH = 16
MAX_XML_FIELDS = 2000


def _flat_xml(text: str | bytes) -> tuple[str, dict[str, str]]:
    """Parse untrusted XML into (root tag, flattened fields) in one expat pass, with no tree built
    (this runs for every callback, twice). DTDs, entity declarations and external references
    are refused where they appear, as defusedxml does; without a DTD no entity can expand."""
    flattener = _Flattener()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = flattener.start
    parser.EndElementHandler = flattener.end
    parser.CharacterDataHandler = flattener.text
    parser.StartDoctypeDeclHandler = _forbidden("a DTD")
    parser.EntityDeclHandler = _forbidden("an entity declaration")
    parser.UnparsedEntityDeclHandler = _forbidden("an entity declaration")
    parser.ExternalEntityRefHandler = _forbidden("an external reference")
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise MalformedCallbackError(f"unacceptable XML: {expat.errors.messages[exc.code]}") from exc
    return flattener.root, flattener.fields


def _forbidden(what: str):
    def refuse(*_: object) -> None:
        raise MalformedCallbackError(f"unacceptable XML: {what}")
    return refuse


class _Flattener:
    """Element events to ``{dotted path: text}``. An element's text counts only when it has no
    child elements; `taken` holds every path used so far, leaves and branches, so a repeat is
    found at once."""

    def __init__(self) -> None:
        self.root = ""
        self.fields: dict[str, str] = {}
        self.taken: set[str] = set()
        self.open: list[tuple[str, list[str] | None]] = []  # (path, text so far; None once it has a child)

    def start(self, tag: str, _attributes: dict) -> None:
        if not self.root:
            self.root = tag
            self.open.append(("", None))
            return
        if len(self.open) > MAX_XML_DEPTH:
            raise MalformedCallbackError(f"callback XML nests deeper than {MAX_XML_DEPTH} levels")
        parent, _ = self.open[-1]
        self.open[-1] = (parent, None)
        path = f"{parent}.{tag}" if parent else tag
        key, n = path, 1
        while key in self.taken:
            n += 1
            key = f"{path}#{n}"
        self.taken.add(key)
        if len(self.taken) > MAX_XML_FIELDS:
            raise MalformedCallbackError(f"callback XML has more than {MAX_XML_FIELDS} elements")
        self.open.append((key, []))

    def text(self, data: str) -> None:
        if self.open and self.open[-1][1] is not None:
            self.open[-1][1].append(data)

    def end(self, _tag: str) -> None:
        key, text = self.open.pop()
        if text is not None:
            self.fields[key] = "".join(text)


def _signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce, encrypted)
    return signer.signature


class CallbackCrypto:
    """Verify, decrypt and (for the simulator) encrypt WeCom callbacks for one app."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            key = b""
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise ValueError("EncodingAESKey must be 43 characters of base64 (a 32-byte key)")
        self._token = token
        self._key = key
        self._receive_id = receive_id

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Answer WeCom's URL check (GET): return the decrypted echostr to send back verbatim."""
        return self._check_and_decrypt(echostr, msg_signature, timestamp, nonce)

    def decrypt_callback(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Return the inner plaintext of a POSTed callback after checking its signature."""
        return self.open_callback(body, msg_signature, timestamp, nonce)[0]

    def open_callback(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> tuple[str, dict[str, str] | None]:
        """The inner plaintext and, when it is XML, its fields: checked and parsed once, since every
        callback is parsed on the way in and this is the busiest path there is."""
        _, envelope = _flat_xml(body)
        encrypted = envelope.get("Encrypt")
        if not encrypted:
            raise MalformedCallbackError("callback has no <Encrypt> element")
        plaintext = self._check_and_decrypt(encrypted, msg_signature, timestamp, nonce)
        fields = parse_plaintext_xml(plaintext) if plaintext.lstrip().startswith("<") else None
        return plaintext, fields

    def encrypt_callback(
        self, plaintext: str, *, timestamp: str, nonce: str, agent_id: str | None = None
    ) -> tuple[str, str]:
        """Build the POST body WeCom would send for ``plaintext`` and its msg_signature."""
        encrypted = PrpCrypto(self._key).encrypt(plaintext, self._receive_id).decode("ascii")
        signature = _signature(self._token, timestamp, nonce, encrypted)
        agent = f"<AgentID><![CDATA[{agent_id}]]></AgentID>" if agent_id is not None else ""
        body = (
            f"<xml><ToUserName><![CDATA[{self._receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>{agent}</xml>"
        )
        return body, signature

    def _check_and_decrypt(self, encrypted: str, msg_signature: str, timestamp: str, nonce: str) -> str:
        expected = _signature(self._token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), msg_signature.encode("utf-8", "replace")):
            raise SignatureError("msg_signature mismatch")
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except binascii.Error as exc:
            raise MalformedCallbackError("ciphertext is not base64") from exc
        if not raw or len(raw) % _AES_BLOCK:
            raise MalformedCallbackError("ciphertext is not a whole number of AES blocks")
        try:
            return PrpCrypto(self._key).decrypt(encrypted, self._receive_id)
        except InvalidCorpIdException as exc:
            raise MalformedCallbackError("receive id does not match this corp") from exc
        except (ValueError, struct.error, IndexError) as exc:  # padding, length prefix, UTF-8
            raise MalformedCallbackError(f"cannot decrypt: {type(exc).__name__}") from exc
