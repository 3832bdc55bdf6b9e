"""Sentences we author into the database, stored in no language and shown in the reader's.

A row written by a Celery worker (French) or by a management command (English) must read the
same in a French and an English admin. So a sentence we write (an error, a note, a change
reason) is stored as its English msgid, marked with `gettext_noop` so `make messages` finds it,
with the values of its %(name)s parameters, and translated where it is shown::

    raise DrillProblem(Text(gettext_noop("The backup file %(path)s is missing."), path=str(path)))
    verification.error = text_of(exc).stored      # what the column holds
    shown(verification.error)                      # in the active language, wherever it is read

`Text.stored` is the msgid itself when there are no parameters (as change reasons and job
summaries always were), else JSON `{"msgid": ..., "params": {...}}`. A parameter may be
another Text: it is kept structured and translated with the sentence around it. Any other value
is shown as it is: names, figures, pg_dump's stderr, a library's exception text, a traceback.
Stored text that is not ours (rows written before, output of external tools) is shown as
stored: gettext leaves a string it does not know alone.

`str(text)` is the sentence in the active language, so an exception raised with a Text says
itself in the language of whoever prints it (a command prints English, the admin French).
`Text.of(value)` keeps a lazy translation (gettext_lazy: a model's verbose_name, a choice's
label) as its msgid, so it can be a parameter: a sentence that opens with such a word is
capitalised in each language ("%(what)s does not exist" -> "Product ...", "Produit ...").

A sentence with plural forms (ngettext) keeps both msgids and what counts: the name of the
parameter that holds the count (ngettext_lazy's `number`) or the count itself
(`Text.counted`, or `Text.of` a lazy plural); it is stored as JSON with `plural` and `number`.
A sentence formatted with braces (DRF's "{max_length}") keeps its msgid too (`Text.braced`,
stored with `"format": "braces"`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from django.utils import formats, translation
from django.utils.functional import Promise
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext

_PREFIX = '{"msgid": '
_PARAM = re.compile(r"%\((?P<name>\w+)\)[sdr]")
# A %-placeholder that may hold a float: %(x)s, %(x).1f, %(x)g ("%%" is skipped as a whole).
_FLOAT_PARAM = re.compile(r"%%|%\((?P<name>\w+)\)(?P<spec>[-+ #0]*\d*(?:\.\d+)?[sfFgGeE])")
_BRACES = "braces"


class Text:
    """A sentence we author: an English msgid (marked with gettext_noop) and its parameters."""

    __slots__ = ("braces", "msgid", "number", "params", "plural")

    def __init__(self, msgid: str, /, **params: Any) -> None:
        self.msgid = msgid
        self.params = params
        self.plural: str | None = None  # ngettext's plural msgid (`msgid` is the singular)
        self.number: str | int | None = None  # the parameter that counts, or the count
        self.braces = False  # formatted with str.format ("{n}") rather than % ("%(n)s")

    @classmethod
    def counted(cls, singular: str, plural: str, number: str | int, /, **params: Any) -> Text:
        """A sentence with plural forms: `number` names the parameter that counts, or is the count."""
        text = cls(singular, **params)
        text.plural, text.number = plural, number
        return text

    @classmethod
    def braced(cls, msgid: str, /, **params: Any) -> Text:
        """A sentence formatted with str.format, as DRF's messages ("... {max_length} ...")."""
        text = cls(msgid, **params)
        text.braces = True
        return text

    def with_params(self, **params: Any) -> Text:
        """The same sentence (its plural forms, its format) with these parameters."""
        text = Text(self.msgid, **params)
        text.plural, text.number, text.braces = self.plural, self.number, self.braces
        return text

    @classmethod
    def of(cls, value: Any) -> Text:
        """`value` as a Text: itself, a lazy translation as its msgid, anything else as its words
        (a string translated already stays in its language: raise with a Text or a lazy one)."""
        if isinstance(value, Text):
            return value
        if isinstance(value, Promise):
            plural = _plural_of(value)
            if plural is not None:
                return plural
            with translation.override(None):  # no catalog: a lazy translation's own words
                return cls(str(value))
        return cls(str(value))

    @classmethod
    def load(cls, stored: str | None) -> Text:
        """The Text a column holds (a string that is not one of ours: a Text of that string)."""
        if stored and stored.startswith(_PREFIX):
            try:
                data = json.loads(stored)
            except ValueError:
                data = None
            if _is_text(data):
                return cls.from_json(data)
        return cls(stored or "")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Text:
        params = {k: cls.from_json(v) if _is_text(v) else v for k, v in data["params"].items()}
        text = cls(data["msgid"], **params)
        if "plural" in data:
            text.plural, text.number = data["plural"], data["number"]
        text.braces = data.get("format") == _BRACES
        return text

    @property
    def stored(self) -> str:
        """What the column holds: the msgid, or JSON when the sentence has parameters or plural
        forms."""
        if not self.params and self.plural is None:
            return self.msgid
        return json.dumps(self.as_json(), ensure_ascii=False)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"msgid": self.msgid}
        if self.plural is not None:
            data.update(plural=self.plural, number=self.number)
        if self.braces:
            data["format"] = _BRACES
        data["params"] = {k: _jsonable(v) for k, v in self.params.items()}
        return data

    def render(self, *, translate: bool = True) -> str:
        """The sentence in the active language (the English msgid with `translate=False`); a
        translation that does not fit its parameters falls back to the English."""
        english = self.msgid
        if self.plural is not None:
            count = self._count()
            english = self.msgid if count == 1 else self.plural
            template = ngettext(self.msgid, self.plural, count) if translate else english
        else:
            template = gettext(self.msgid) if translate and self.msgid else self.msgid
        if not self.params:
            return template
        params = {
            k: v.render(translate=translate) if isinstance(v, Text) else v for k, v in self.params.items()
        }
        for candidate in (template, english):
            try:
                if self.braces:
                    sentence = candidate.format(**params)
                elif translate:
                    sentence = _with_local_decimals(candidate, params)
                else:
                    sentence = candidate % params
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):  # e.g. {a.b}
                continue
            return capfirst(sentence) if self._opens_with_a_word(candidate) else sentence
        return english

    def _count(self) -> int:
        """The count that chooses the plural form (the plural's when it cannot be read)."""
        count = self.params.get(self.number) if isinstance(self.number, str) else self.number
        try:
            return int(count)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):  # OverflowError: a float infinity
            return 2

    def _opens_with_a_word(self, template: str) -> bool:
        """Whether `template` is a sentence (words of its own, not a layout like `joined`'s)
        that opens with a Text parameter: a translated word, lower case in the catalog."""
        opening = _PARAM.match(template)
        return (
            opening is not None
            and isinstance(self.params.get(opening["name"]), Text)
            and any(c.isalpha() for c in _PARAM.sub("", template))
        )

    def english(self) -> str:
        """For logs, emails and anything read outside a request."""
        return self.render(translate=False)

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        if self.plural is not None:
            return f"Text.counted({self.msgid!r}, {self.plural!r}, {self.number!r}, **{self.params!r})"
        if self.braces:
            return f"Text.braced({self.msgid!r}, **{self.params!r})"
        return f"Text({self.msgid!r}, **{self.params!r})"

    def _key(self) -> tuple[Any, ...]:
        return (self.msgid, self.params, self.plural, self.number, self.braces)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self.msgid)


def _with_local_decimals(template: str, params: dict[str, Any]) -> str:
    """`template % params` with each float written with the reader's decimal separator
    ("90,0 %" in French): the figure is formatted as the template says, then its point swapped.
    Whole numbers are left alone: they are ids and process numbers as often as counts."""
    separator = formats.get_format("DECIMAL_SEPARATOR")
    if separator == ".":
        return template % params
    local = dict(params)

    def localised(match: re.Match[str]) -> str:
        name, spec = match["name"], match["spec"]
        value = params.get(name)  # a missing name: the KeyError of `%` below, as before
        if not isinstance(value, float):
            return match[0]
        key = f"{name}__{len(local)}"
        local[key] = (str(value) if spec == "s" else f"%{spec}" % value).replace(".", separator)
        return f"%({key})s"

    return _FLOAT_PARAM.sub(localised, template) % local


def _is_text(data: Any) -> bool:
    if not (
        isinstance(data, dict)
        and {"msgid", "params"} <= data.keys() <= {"msgid", "plural", "number", "format", "params"}
        and isinstance(data["msgid"], str)
        and isinstance(data["params"], dict)
    ):
        return False
    if "plural" in data or "number" in data:
        number = data.get("number")
        if (
            not isinstance(data.get("plural"), str)
            or not isinstance(number, (str, int))
            or isinstance(number, bool)
        ):
            return False
    return data.get("format", _BRACES) == _BRACES


def _plural_of(value: Promise) -> Text | None:
    """A lazy plural (ngettext_lazy) as a Text with both msgids, else None. Django keeps them
    where it pickles the proxy from: its arguments, or, when `number` names a parameter
    ("limit_value" for the length validators), the arguments it hands to `__reduce__`."""
    kwargs = getattr(value, "_kw", None)
    if isinstance(kwargs, dict) and isinstance(kwargs.get("number"), int):
        number: Any = kwargs["number"]
    else:
        try:
            _unpickle, args = value.__reduce__()[:2]  # (func, resultclass, number, kwargs)
        except (TypeError, ValueError):
            return None
        if not (isinstance(args, tuple) and len(args) == 4 and isinstance(args[3], dict)):
            return None
        number, kwargs = args[2], args[3]
    if set(kwargs) - {"singular", "plural", "number"} or not isinstance(number, (str, int)):
        return None  # a context (npgettext_lazy) has no place in a Text: shown as raised
    singular, plural = kwargs.get("singular"), kwargs.get("plural")
    if not (isinstance(singular, str) and isinstance(plural, str)):
        return None
    return Text.counted(singular, plural, number)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Text):
        return value.as_json()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def joined(parts: Sequence[Text | str], separator: str = "; ") -> Text:
    """Texts one after the other, each translated when shown (a layout: no words of its own)."""
    names = [f"part{i}" for i in range(len(parts))]
    return Text(separator.join(f"%({name})s" for name in names), **dict(zip(names, parts, strict=True)))


def authored(exc: BaseException) -> Text | None:
    """The Text an exception was raised with (a DomainError's `text`), None if it has none."""
    text = getattr(exc, "text", None)
    if isinstance(text, Text):
        return text
    if exc.args and isinstance(exc.args[0], Text):
        return exc.args[0]
    return None


def text_of(exc: BaseException) -> Text:
    """What an exception says: the Text it was raised with, else its own words, verbatim."""
    return authored(exc) or Text(str(exc))


def shown(stored: str | None) -> str:
    """A stored text in the active language ("" for none)."""
    return Text.load(stored).render() if stored else ""


def english(stored: str | None) -> str:
    """A stored text in English ("" for none): for logs, emails and the management commands."""
    return Text.load(stored).english() if stored else ""
