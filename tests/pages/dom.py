"""A small strict HTML reader for the page tests: a tree, and an error on any misnested tag."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        out: list[Node] = []
        for c in self.children:
            if isinstance(c, Node):
                wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
                if (tag is None or c.tag == tag) and all(
                        c.attrs.get(k) == v or (v == "*" and k in c.attrs)
                        for k, v in wanted.items()):
                    out.append(c)
                out += c.all(tag, **attrs)
        return out

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        open_tag = self.stack[-1].tag
        if open_tag != tag:
            raise AssertionError(f"</{tag}> closes <{open_tag}>")
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(doc: str) -> Node:
    b = _Builder()
    b.feed(doc)
    b.close()
    assert len(b.stack) == 1, f"unclosed: {[n.tag for n in b.stack[1:]]}"
    return b.root


def rows(node: Node) -> dict[str, str]:
    """A definition list's (or several's) label -> value."""
    out = {}
    for div in node.all("div"):
        dts, dds = div.all("dt"), div.all("dd")
        if len(dts) == 1 and len(dds) == 1:
            out[dts[0].text().strip()] = dds[0].text().strip()
    return out


def table(node: Node) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    """A bill table's (title, amount) lines and its total row."""
    body = [(tr.one("th").text().strip(), tr.one("td").text().strip())
            for tr in node.one("tbody").all("tr")]
    foot = node.one("tfoot").one("tr")
    return body, (foot.one("th").text().strip(), foot.one("td").text().strip())
