"""The simulator's 会话内容存档 (chat archive): rep↔customer chats, encrypted as WeCom's SDK serves them.

WeCom's SDK answers GetChatData with records ``{seq, msgid, publickey_ver, encrypt_random_key,
encrypt_chat_msg}``: a fresh random key per message, RSA-encrypted (PKCS#1 v1.5, base64) with
the company's public key of version ``publickey_ver``, and the message JSON encrypted with that
key. The real symmetric cipher is internal to the SDK (``DecryptData``); this simulator uses
AES-256-CBC with PKCS#7 padding, the random key being the base64 text of 32 random bytes and
``encrypt_chat_msg`` being ``base64(iv ‖ ciphertext)``. ``SimulatorSource.decrypt`` mirrors it.

Each message is encrypted once, when it is added, with the key version current then; like
WeCom, a key rotation leaves older records under their old version.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAX_LIMIT = 1000  # "一次拉取的消息条数，最大值1000条，超过1000条会返回错误"


def encrypt_message(message: dict[str, Any], public_key: rsa.RSAPublicKey) -> tuple[str, str]:
    """(encrypt_random_key, encrypt_chat_msg) for one message, with a fresh random key."""
    random_key = base64.b64encode(os.urandom(32))
    iv = os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(message, ensure_ascii=False).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(random_key)), modes.CBC(iv)).encryptor()
    sealed = iv + encryptor.update(plain) + encryptor.finalize()
    wrapped = public_key.encrypt(random_key, padding.PKCS1v15())
    return base64.b64encode(wrapped).decode(), base64.b64encode(sealed).decode()


@dataclass
class ChatArchive:
    """The archive of one company: its archive secret, its public keys by version, and the records."""

    secret: str
    public_keys: dict[int, rsa.RSAPublicKey]
    records: list[dict[str, Any]] = field(default_factory=list)
    pages_served: list[tuple[int, int]] = field(default_factory=list)  # (seq, limit) of each GetChatData

    @property
    def publickey_ver(self) -> int:
        return max(self.public_keys)

    def rotate_key(self, public_key: rsa.RSAPublicKey) -> int:
        """The admin uploads a new public key: later messages use the new version (returned)."""
        version = self.publickey_ver + 1
        self.public_keys[version] = public_key
        return version

    def add(self, sender: str, recipients: list[str], msgtype: str, content: dict[str, Any], *,
            msgtime_ms: int | None = None, roomid: str = "", action: str = "send") -> dict[str, Any]:
        """Archive one message as WeCom would; returns its plaintext JSON."""
        msgtime_ms = msgtime_ms if msgtime_ms is not None else int(time.time() * 1000)
        suffix = "_external" if any(u.startswith(("wm", "wo")) for u in [sender, *recipients]) else ""
        message = {
            "msgid": f"{secrets.randbits(63)}_{msgtime_ms // 1000}{suffix}",
            "action": action, "from": sender, "tolist": list(recipients), "roomid": roomid,
            "msgtime": msgtime_ms, "msgtype": msgtype, msgtype: content,
        }
        self.add_raw(message)
        return message

    def add_raw(self, message: dict[str, Any]) -> int:
        """Archive any message JSON (e.g. a ``switch`` record, which has no msgtype); returns its seq."""
        version = self.publickey_ver
        random_key, chat_msg = encrypt_message(message, self.public_keys[version])
        seq = len(self.records) + 1
        self.records.append({"seq": seq, "msgid": message["msgid"], "publickey_ver": version,
                             "encrypt_random_key": random_key, "encrypt_chat_msg": chat_msg})
        return seq

    def page(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """GetChatData: records after ``seq``, at most ``limit``. Raises ValueError on bad arguments."""
        if seq < 0 or not 1 <= limit <= MAX_LIMIT:
            raise ValueError("seq must be >= 0 and limit 1..1000")
        self.pages_served.append((seq, limit))
        return [dict(r) for r in self.records[seq:seq + limit]]

