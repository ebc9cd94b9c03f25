"""Keeping replies within what WeCom accepts."""

TEXT_LIMIT_BYTES = 2048


def fit_text(text: str, limit: int = TEXT_LIMIT_BYTES) -> str:
    """Cut at a character boundary so the UTF-8 text fits WeCom's 2048-byte text message limit."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    ellipsis = "…"
    budget = limit - len(ellipsis.encode("utf-8"))
    return encoded[:budget].decode("utf-8", errors="ignore") + ellipsis
