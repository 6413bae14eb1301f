"""The Redis store's key layout, its pub/sub channels and the log-change notice.

Keys of one chat (all in one Redis Cluster hash slot thanks to the `{...}` hash tag):

    {prefix}:{<chat>}:chat                  hash: owner, active, last, last_ended_at,
                                            revision (raised by every begin and end), title
    {prefix}:{<chat>}:messages              string: the history, a JSON array
    {prefix}:{<chat>}:log:<generation>      stream: entry `0-{k+1}` is offset k, field `c`
                                            the chunk; the end marker has field `end`
    {prefix}:{<chat>}:lease:<generation>    string with a PX TTL: the producer is alive; its
                                            value is the producer's epoch (fencing: every
                                            append, renewal and end names its epoch)
    {prefix}:{<chat>}:epoch:<generation>    string: the last granted epoch (INCR on claim)
    {prefix}:{<chat>}:plan:<generation>     string: what a takeover needs to re-run a step
    {prefix}:{<chat>}:stop:<generation>     string: a stop was requested
    {prefix}:{<chat>}:steer:<generation>         stream: entry `0-n` is steering message n
    {prefix}:{<chat>}:steer-closed:<generation>  string: the queue refuses new messages
    {prefix}:{<chat>}:generations                stream: entry `0-n` is the chat's n-th
                                                 announced generation
    {prefix}:owner:{<owner>}:chats          sorted set: an owner's chats by last update
                                            (its own slot: written with single-key commands)

`<chat>` is the chat id percent-encoded, so a client-chosen id can never close the hash tag
early. Channels: `{prefix}:stop` (a stop key), `{prefix}:logs` (log-change notices) and
`{prefix}:steer` (a pushed stream's key).
"""

from __future__ import annotations

from urllib.parse import quote, unquote


def chat_tag(chat_id: str) -> str:
    """The hash tag content for a chat: percent-encoding leaves only `[A-Za-z0-9_.~-]` and
    `%XX`, never a brace. The empty id would give `{}`, which Redis ignores as a tag, so it
    becomes a lone `%`, which no other id encodes to."""
    return quote(chat_id, safe="", errors="surrogatepass") or "%"


class Keys:
    """The names of one store's keys and channels, under its prefix."""

    __slots__ = ("log_channel", "prefix", "steer_channel", "stop_channel")

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("key_prefix must not contain braces: they would be the hash tag")
        self.prefix = prefix
        self.stop_channel = f"{prefix}:stop"
        self.log_channel = f"{prefix}:logs"
        self.steer_channel = f"{prefix}:steer"

    def key(self, chat_id: str, kind: str, generation_id: str | None = None) -> str:
        """The Redis key of `kind` (chat, messages, log, lease, stop, ...) for a chat."""
        key = f"{self.prefix}:{{{chat_tag(chat_id)}}}:{kind}"
        return key if generation_id is None else f"{key}:{generation_id}"

    def owner_index(self, owner: str) -> str:
        return f"{self.prefix}:owner:{{{chat_tag(owner)}}}:chats"

    def chat_pattern(self) -> str:
        """The SCAN pattern matching every chat's hash."""
        return f"{self.prefix}:{{*}}:chat"

    def keys_of_chat_pattern(self, chat_id: str) -> str:
        """The SCAN pattern matching every key of one chat (its tag has no glob character;
        the prefix's are escaped)."""
        prefix = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        return f"{prefix}:{{{chat_tag(chat_id)}}}:*"

    def chat_of(self, chat_key: str) -> tuple[str, str]:
        """The chat id and its tag, from a key matched by `chat_pattern()`."""
        tag = chat_key[len(self.prefix) + 2 : -len("}:chat")]
        return unquote(tag), tag

    def lease_of_tag(self, tag: str, generation_id: str) -> str:
        return f"{self.prefix}:{{{tag}}}:lease:{generation_id}"


def notice(chat_id: str, generation_id: str) -> bytes:
    """The log-change notification's payload (the script puts the offset the log reached
    and a space in front): both ids, unambiguous for any chat id."""
    return f"{len(generation_id)}:{generation_id}{chat_id}".encode("utf-8", "surrogatepass")


def parse_notice(data: bytes) -> tuple[str, str, int] | None:
    """(chat id, generation id, offset reached) of one notice line, None if malformed."""
    offset, _, rest = data.partition(b" ")
    size, sep, rest = rest.partition(b":")
    if not sep or not size.isdigit() or not offset.isdigit():
        return None
    text = rest.decode("utf-8", "surrogatepass")
    return text[int(size) :], text[: int(size)], int(offset)
