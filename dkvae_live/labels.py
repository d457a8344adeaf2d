"""Map instrument names and General MIDI drum notes to the bank's drum classes.

Labelling is done by an ordered list of rules; the first rule that matches wins. Each rule is a
regular expression (case-insensitive, searched) on the instrument name, optionally restricted to
one kit. Rules are tried on the instrument name first and on the file name only when no rule
matched the instrument name. A rule whose class is ``None`` *excludes* a sound (sound effects,
metronome clicks, empty placeholder samples). What no rule labels is left out and reported.

The default rules are documented in docs/banks.md. A project may supply its own rules as a TOML
file (see :func:`load_rules`).

Pure Python, in the live package: the bank (dkvae_training) labels its sounds with these rules,
and `dkvae-live kit-from-folder` gives a user's sample files their classes with the same ones.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CLASS_NAMES_DEFAULT: tuple[str, ...] = ("kick", "snare", "hihat", "tom", "cymbal", "perc")


class LabelRulesError(ValueError):
    """A rules file or rule is malformed."""


@dataclass(frozen=True)
class Rule:
    """One labelling rule: sounds whose name matches ``pattern`` get ``label``.

    ``label`` None means "leave this sound out". ``kit`` (a regular expression on the kit name)
    restricts the rule to matching kits; used for the known mislabelled instruments of real kits.
    """

    pattern: str
    label: str | None
    kit: str | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _kit_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_regex", re.compile(self.pattern, re.IGNORECASE))
            kit_regex = re.compile(self.kit, re.IGNORECASE) if self.kit is not None else None
        except re.error as exc:
            raise LabelRulesError(f"rule {self.pattern!r}: bad regular expression: {exc}") from exc
        object.__setattr__(self, "_kit_regex", kit_regex)

    def matches(self, name: str, kit: str = "") -> bool:
        if self._kit_regex is not None and not self._kit_regex.search(kit):
            return False
        return self._regex.search(name) is not None


# LMMS's DrumSynth presets (kits "LMMS DrumSynth <folder>"): whole folders of synths, basses and
# sound effects are left out; elsewhere the names decide, with each folder's own shorthand.
_DS = r"^lmms drumsynth "
DRUMSYNTH_RULES: tuple[Rule, ...] = (
    Rule(r".", None, kit=_DS + r"(instrument|misc_synth|misc_fx|effects|magnetboy)$"),
    Rule(r"bass ?drum|\bbd\b", "kick", kit=_DS + r"misc_bass$"),
    Rule(r".", None, kit=_DS + r"misc_bass$"),
    Rule(r"\btom|tommy", "tom", kit=_DS + r"misc_perc$"),
    Rule(r".", "perc", kit=_DS + r"misc_perc$"),
    Rule(r"ride|cymbal|\bcym\b", "cymbal", kit=_DS + r"misc_hats$"),
    Rule(r".", "hihat", kit=_DS + r"misc_hats$"),
    Rule(r".", "perc", kit=_DS + r"misc_claps$"),
    Rule(r"hi-?q|\bstk\b|\bcui\d|vibra|zurrr|gamelan|thumb ?pno|taiko|snare ?& ?hat", None, _DS),
    Rule(r"^boom$|^k\b|kik\b", "kick", kit=_DS),
    Rule(r"^s\b", "snare", kit=_DS),
    Rule(r"^h\b|\bhat|\bhh|\boh\b|hi ?hat|high hat", "hihat", kit=_DS),
    Rule(r"syntom", "tom", kit=_DS),
    Rule(r"\bcga|\bcab\b|\bcow\b|\bclp\b|\bwood\d*\b|knock|\bclav", "perc", kit=_DS),
    Rule(r"ramacym", "cymbal", kit=_DS),
    Rule(r"^simple-k$|\dbd$", "kick", kit=_DS),
    # "808" and no other drum's name: the 808 bass drum
    Rule(r"^(?!.*(snare|\bsn\b|hat|hh|clap|tom|cym|ride|rim|cow)).*808\b", "kick", kit=_DS),
    Rule(r"\bperc|percussion", "perc", kit=_DS),
    Rule(r"rimmy", "snare", kit=_DS),
    Rule(r"^simple-s$", "snare", kit=_DS),
    Rule(r"^simple-h$", "hihat", kit=_DS),
    Rule(r"^simple-[cr]$", "cymbal", kit=_DS),
)

# Sonic Pi's samples (kits "Sonic Pi <family>", instrument = file name): its hi-hats are named
# "drum_cymbal_closed/open/pedal", its kicks "drum_bass_*", its electronic percussion are blips
# and pings, and a few of its "perc_" and "elec_" files are sound effects, not drums.
_SP = r"^sonic pi "
SONIC_PI_RULES: tuple[Rule, ...] = (
    Rule(r"^drum cymbal (closed|open|pedal)\b", "hihat", kit=_SP),
    Rule(r"^drum bass\b", "kick", kit=_SP),
    Rule(r"^elec twang$|^perc (door|impact\d*|swash|swoosh|till)$", None, kit=_SP),
    Rule(
        r"^elec (beep|bell|blip\d*|blup|bong|chime|flip|ping|plip|pop|tick|twip|wood)$", "perc", _SP
    ),
    Rule(r"^perc bell\d*$", "perc", kit=_SP),
    Rule(r"^tabla ", "perc", kit=_SP),
)

# The marching and orchestral sets of the GM SoundFonts name their drums in their own way, and
# their General MIDI notes say nothing (a marching snare on GM's cymbal notes): these kit rules
# come before the notes, as every kit rule does.
MARCHING_RULES: tuple[Rule, ...] = (
    Rule(r"roll|mallet click|stick|shell|\brim\b|backstick", None, kit=r"marching"),
    Rule(r"hihat", "hihat", kit=r"marching cymbals"),
    Rule(r".", "cymbal", kit=r"marching cymbals"),
    Rule(r".", "kick", kit=r"marching ?bass"),
    Rule(r".", "tom", kit=r"marching ?tenor"),
    Rule(r".", "snare", kit=r"marching snare"),
    Rule(r"timpani|\btimp\b", "tom", kit=r"orchestra"),
)

# Kit-specific fixes for labels known to be wrong (see shared/notes/data-sources.md), then the
# exclusions, then the classes in an order where the more specific names come first
# ("cowbell" before the cymbal's "bell", "hi-hat" before anything else, "floor tom" is a tom).
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(r"^kick$", "tom", kit=r"^audiophob"),  # a tom sample under the name "Kick"
    Rule(r".", None, kit=r"^rumpf"),  # its names are not its sounds: a "high tom" at 57 Hz
    Rule(r"^pedal hh$", "perc", kit=r"^audiophob"),  # a shaker under the name "Pedal HH"
    # the bells of the dunun drums: struck bells of 0.1-0.7 s, like a cowbell, not a cymbal
    Rule(r"\bbell\b", "perc", kit=r"^circafrique"),
    # AVL's kits put a hi-hat swish, a choked crash and a Paiste cymbal on General MIDI's tom
    # and percussion notes (48, 50, 60); their names say what they are
    Rule(r"hat", "hihat", kit=r"_4_lv2$"),
    Rule(r"crash|ride|paiste", "cymbal", kit=r"_4_lv2$"),
    *DRUMSYNTH_RULES,
    *SONIC_PI_RULES,
    *MARCHING_RULES,
    Rule(r"empty ?sample", None),
    Rule(r"\b(fx|zap|whistle|metronome|scratch|roll)\b", None),
    Rule(r"\b(high q|square click|seq click|vibra ?slap)\b", None),
    Rule(r"cow ?bell", "perc"),
    # a drum machine's sample names: the voice's code alone, perhaps with a number (TR-808 and
    # TR-909 sets: "SD0000", "OH00", "LT00", "CY0000", "HC00" a high conga)
    *(
        Rule(rf"^({codes})( ?\d+)?$", label)
        for codes, label in (
            ("bd|kd|kck", "kick"),
            ("sd|rs", "snare"),
            ("ch|oh|ph|hhc|hho", "hihat"),
            ("lt|mt|ht|ft", "tom"),
            ("cy|cr|crs|rd|rid", "cymbal"),
            ("cp|clp|cb|cl|ma|lc|mc|hc|cg|tb", "perc"),
        )
    ),
    Rule(r"hi[- ]?hat|\bhh\b|\bhh\d|hihat|\bhats?\b|^hh_|\bchh\b|\bohh\b", "hihat"),
    Rule(r"kick|bass ?drum|bassdrum|\bbd\b|^bd_?\d|\bbd\d", "kick"),
    Rule(
        r"snare|\bsnr\b|\bsn\d*\b|^sn_|\bsd\b|rim ?shot|side ?stick|rim ?click|\brim\b|\brim\d",
        "snare",
    ),
    Rule(r"\btom|^tom|\btm\d*\b|floor ?tom", "tom"),
    Rule(
        r"crash|\bcrsh\b|ride|splash|china|cymbal|\bcym\b|\bbell\b|^cb\d*_|^rd\d*_|^bl_", "cymbal"
    ),
    Rule(
        r"clap|snap|clave|wood ?block|tambourine|\btamb|maraca|shaker|cabasa|conga|bongo|"
        r"timbale|agogo|guiro|cajon|triangle|cuica|castanet|waterglass|\bstick\b|djembe|wood\d|"
        r"shekere|bell ?tree|jingle|dunun|dununba|sangban|kenkeni|cuica|quica",
        "perc",
    ),
)


# General MIDI percussion key map (channel 10), notes 27-87, grouped into the default classes.
# None: not a drum one-shot we train on (whistles, metronome sounds, scratches, vibraslap).
_GM_GROUPS: dict[str | None, Iterable[int]] = {
    None: (27, 29, 30, 32, 33, 34, 58, 71, 72),
    "kick": (35, 36),
    "snare": (37, 38, 40),
    "hihat": (42, 44, 46),
    "tom": (41, 43, 45, 47, 48, 50),
    "cymbal": (49, 51, 52, 53, 55, 57, 59),
    "perc": (28, 31, 39, 54, 56, *range(60, 71), *range(73, 88)),
}
GM_DRUM_CLASSES: dict[int, str | None] = {
    note: label for label, notes in _GM_GROUPS.items() for note in notes
}


# Percussion that players call by name, kept in the manifest's ``instrument_type`` whatever class
# it trains as (the GM names of notes 37, 39, 54, 56, 60-87 where one of these words is in them).
INSTRUMENT_TYPES: tuple[tuple[str, str], ...] = (
    ("clap", r"clap"),
    ("rimshot", r"rim ?shot|\brim\b|rim ?click|side ?stick|\bstk\b"),
    ("cowbell", r"cow ?bell|\bcow\b"),
    ("shaker", r"shaker|shake\b|shaaka|\bcabasa|\bcab\b"),
    ("tambourine", r"tambourine|\btamb"),
    ("conga", r"conga|\bcga"),
    ("bongo", r"bongo"),
    ("clave", r"clave|\bclav\b"),
    ("maracas", r"maraca"),
    ("woodblock", r"wood ?block|\bwood\d*\b"),
    ("timbale", r"timbale"),
    ("agogo", r"agogo"),
    ("triangle", r"triangle"),
    ("guiro", r"guiro"),
)
_INSTRUMENT_TYPE_REGEX = tuple((name, re.compile(p, re.IGNORECASE)) for name, p in INSTRUMENT_TYPES)
_GM_TYPES: dict[int, str] = {
    37: "rimshot", 39: "clap", 54: "tambourine", 56: "cowbell", 60: "bongo", 61: "bongo",
    62: "conga", 63: "conga", 64: "conga", 65: "timbale", 66: "timbale", 67: "agogo", 68: "agogo",
    69: "shaker", 70: "maracas", 73: "guiro", 74: "guiro", 75: "clave", 76: "woodblock",
    77: "woodblock", 80: "triangle", 81: "triangle", 82: "shaker",
}  # fmt: skip


def instrument_type(name: str, gm_notes: Iterable[int] = ()) -> str:
    """The percussion a player would name (``clap``, ``cowbell``...), or "" for none: from the
    instrument name, else from the General MIDI notes that play the sound."""
    cleaned = _clean_name(name)
    for type_name, regex in _INSTRUMENT_TYPE_REGEX:
        if regex.search(cleaned):
            return type_name
    named = {_GM_TYPES[n] for n in gm_notes if n in _GM_TYPES}
    return named.pop() if len(named) == 1 else ""


STYLES = ("acoustic", "electronic")
# A kit (or one sound of it) is electronic when its name or the sound's says drum machine,
# synthesis or heavy processing; everything else is a recorded acoustic kit.
_ELECTRONIC = re.compile(
    r"\b(tr|cr|rx|dr)[- ]?\d{2,4}|808|909|606|linn|electr|analog|synth|drum ?machine|techno|"
    r"\bdance|\bhouse|hip ?hop|8 ?bit|lo-?fi|breaks|\blmms\b|\bopl-?\d|\bfm\b",
    re.IGNORECASE,
)
_ACOUSTIC = re.compile(r"acoustic", re.IGNORECASE)


def kit_style(kit: str, instrument: str = "") -> str:
    """``electronic`` or ``acoustic``, decided by the kit's name and the sound's (a SoundFont
    kit is named after its preset: ``FluidR3_GM TR-808``)."""
    if _ACOUSTIC.search(instrument):
        return "acoustic"
    text = f"{_clean_name(kit)} {_clean_name(instrument)}"
    return "electronic" if _ELECTRONIC.search(text) else "acoustic"


def gm_note_class(note: int) -> str | None:
    """The default class of a General MIDI drum note, None for notes outside the kit."""
    return GM_DRUM_CLASSES.get(note)


@dataclass(frozen=True)
class LabelRules:
    """An ordered list of :class:`Rule` and the class names they may produce."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    class_names: tuple[str, ...] = CLASS_NAMES_DEFAULT
    gm_classes: Mapping[int, str | None] = field(default_factory=lambda: dict(GM_DRUM_CLASSES))

    def __post_init__(self) -> None:
        for rule in self.rules:
            if rule.label is not None and rule.label not in self.class_names:
                raise LabelRulesError(
                    f"rule {rule.pattern!r} gives class {rule.label!r}, "
                    f"which is not one of {list(self.class_names)}"
                )

    def match(self, name: str, kit: str = "") -> tuple[bool, str | None]:
        """(True, class) for the first rule matching ``name``; (True, None) when that rule
        excludes it; (False, None) when no rule matches."""
        cleaned = _clean_name(name)
        for rule in self.rules:
            if rule.matches(cleaned, kit):
                return True, rule.label
        return False, None

    def match_kit_rule(self, name: str, kit: str) -> tuple[bool, str | None]:
        """Like :meth:`match` with only the rules restricted to kits: fixes for known kits,
        which win over everything else, General MIDI notes included."""
        cleaned = _clean_name(name)
        for rule in self.rules:
            if rule.kit is not None and rule.matches(cleaned, kit):
                return True, rule.label
        return False, None

    def classify_note(self, note: int) -> tuple[bool, str | None]:
        """Like :meth:`match`, for a General MIDI drum note. A note whose class is not one of
        ``class_names`` counts as unknown, so the name rules get a say."""
        if note not in self.gm_classes:
            return False, None
        label = self.gm_classes[note]
        if label is not None and label not in self.class_names:
            return False, None
        return True, label

    def classify(
        self, instrument: str, file_name: str = "", kit: str = "", gm_notes: Iterable[int] = ()
    ) -> tuple[bool, str | None]:
        """The class of a sound, like :meth:`match`: (True, class); (True, None) when a rule or
        the General MIDI map leaves it out; (False, None) when nothing labels it.

        Rules limited to a kit (fixes for known kits) decide first, then the General MIDI notes
        that play the sound (the class most of them give; a tie decides nothing), then the other
        name rules. Each rule is tried on the instrument name, then on the file name (without
        folders or extension).
        """
        names = [n for n in (instrument, Path(file_name).stem if file_name else "") if n]
        for name in names:
            matched, label = self.match_kit_rule(name, kit)
            if matched:
                return True, label
        votes: Counter[str | None] = Counter()
        for note in gm_notes:
            known, label = self.classify_note(note)
            if known:
                votes[label] += 1
        ranked = votes.most_common(2)
        note_decides = bool(ranked) and (len(ranked) == 1 or ranked[0][1] > ranked[1][1])
        if note_decides and ranked[0][0] is not None:
            return True, ranked[0][0]
        # No note decides, or the notes say "not a drum": the name rules have the last word (a
        # kit may put a crash choke on GM's vibraslap note); a note's exclusion stands if no rule
        # matches.
        for name in names:
            matched, label = self.match(name, kit)
            if matched:
                return True, label
        return note_decides, None


def folder_instrument(relative: Path) -> str:
    """The instrument name of a file in a folder of loose samples, ``relative`` to that folder:
    the path of its subfolder (``Kicks/Acoustic``), or its file name without the extension when
    it lies in the folder itself. The rules try it before the file name."""
    folder = relative.parent
    return folder.as_posix() if folder.parts else relative.stem


def _clean_name(name: str) -> str:
    # Underscores and camel case hide word boundaries: "HiHat_Open" / "PearlKick" / "HatClosed".
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return re.sub(r"[_\s]+", " ", spaced).strip()


def load_rules(path: str | Path) -> LabelRules:
    """Read labelling rules from a TOML file.

    Format::

        class_names = ["kick", "snare", "hihat", "tom", "cymbal", "perc"]
        include_default_rules = true   # append the default rules after these ones
        [[rule]]
        pattern = "808 cowbell"
        label = "perc"        # or label = "" to leave matching sounds out
        kit = "TR808"         # optional
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LabelRulesError(f"{path}: cannot read rules: {exc}") from exc
    return rules_from_mapping(data, source=str(path))


def rules_from_mapping(data: Mapping[str, object], source: str = "rules") -> LabelRules:
    class_names = data.get("class_names", list(CLASS_NAMES_DEFAULT))
    if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
        raise LabelRulesError(f"{source}: class_names must be a list of strings")
    if len(set(class_names)) != len(class_names) or not class_names:
        raise LabelRulesError(f"{source}: class_names must be non-empty and without duplicates")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise LabelRulesError(f"{source}: [[rule]] must be an array of tables")
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, dict) or not isinstance(raw.get("pattern"), str):
            raise LabelRulesError(f"{source}: rule {i} needs a string 'pattern'")
        label = raw.get("label", "")
        kit = raw.get("kit")
        if not isinstance(label, str) or (kit is not None and not isinstance(kit, str)):
            raise LabelRulesError(f"{source}: rule {i}: 'label' and 'kit' must be strings")
        rules.append(Rule(raw["pattern"], label or None, kit))
    if data.get("include_default_rules", True):
        rules.extend(r for r in DEFAULT_RULES if r.label is None or r.label in class_names)
    return LabelRules(tuple(rules), tuple(class_names))
