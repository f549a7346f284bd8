"""Values a careless or hostile caller passes where JSON is taken: too deep to write, or circular."""


def nested(depth: int = 100_000) -> list:
    """A list holding a list ... ``depth`` deep (``json.dumps`` raises RecursionError on it)."""
    top: list = []
    inner = top
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return top


def circular() -> dict:
    """A dict that holds itself (``json.dumps`` raises ValueError: circular reference)."""
    loop: dict = {"type": "x"}
    loop["self"] = loop
    return loop
