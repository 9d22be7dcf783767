"""The synthetic corpus's language: a weather-forecast gloss lexicon and its translation grammar.

Why a weather domain: PHOENIX-2014T (the main SLT benchmark) is German weather forecasts, so a
model that works here faces the same kind of text: times, regions, weather, temperatures.

The gloss side follows sign-language order (time – place – topic – comment: ``DONNERSTAG SUED
REGEN STARK``); the spoken side reorders and inflects (German verb-second order and adjective
endings by noun gender, English "there will be ... in the south", Chinese place-before-predicate),
and inserts function words, so translation is not word-for-word copying:

* ``DONNERSTAG SUED REGEN STARK`` -> de ``am donnerstag gibt es im süden starken regen``,
  en ``on thursday there will be heavy rain in the south``, zh ``星期四南部有大雨``.
* ``DONNERSTAG ABEND`` -> de ``am donnerstagabend`` (compounding), en ``on thursday evening``.

A sentence is one to three clauses from six clause templates (precipitation, temperature value,
temperature trend, sky, wind, temperature adjective). Realisation is a deterministic function of
the glosses plus a few seeded choices between synonymous phrasings (``gibt es`` / ``erwarten
wir``), so references vary the way real translations do and BLEU cannot reach 100 by copying.

English adds fingerspelled proper names (How2Sign-like): a region slot may be a city spelled
letter by letter; its gloss token is ``fs-<NAME>`` (e.g. ``fs-BOSTON``) and the text contains the
name (``in boston``). German and Chinese have no fingerspelling.

Texts are lowercase without punctuation (PHOENIX style); Chinese has no spaces (CSL-Daily style,
scored per character). ``vocab_size`` keeps the first entries of every category (at least two
each) so smaller vocabularies stay grammatical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LANGS: tuple[str, ...] = ("de", "en", "zh")


@dataclass(frozen=True)
class Entry:
    """One gloss with its surface forms; ``gender`` is the German noun gender (m, f, n, pl)."""

    gloss: str
    category: str
    de: str
    en: str
    zh: str
    gender: str = ""


def _entries(category: str, rows: list[tuple]) -> list[Entry]:
    return [Entry(row[0], category, *row[1:]) for row in rows]


# Day and daytime (German daytime form is the compound tail: "donnerstag" + "abend").
DAYS = _entries("day", [
    ("MONTAG", "montag", "monday", "星期一"), ("DIENSTAG", "dienstag", "tuesday", "星期二"),
    ("MITTWOCH", "mittwoch", "wednesday", "星期三"),
    ("DONNERSTAG", "donnerstag", "thursday", "星期四"), ("FREITAG", "freitag", "friday", "星期五"),
    ("SAMSTAG", "samstag", "saturday", "星期六"), ("SONNTAG", "sonntag", "sunday", "星期日"),
    ("HEUTE", "heute", "today", "今天"), ("MORGEN", "morgen", "tomorrow", "明天"),
    ("WOCHENENDE", "wochenende", "weekend", "周末"),
])
DAYTIMES = _entries("daytime", [
    ("FRUEH", "morgen", "morning", "早上"), ("MITTAG", "mittag", "noon", "中午"),
    ("NACHMITTAG", "nachmittag", "afternoon", "下午"), ("ABEND", "abend", "evening", "晚上"),
    ("NACHT", "nacht", "night", "夜里"),
])
SEQUENCERS = _entries("sequencer", [
    ("DANN", "danach", "then", "然后"), ("SPAETER", "später", "later", "之后"),
])
# Regions: German and English forms are whole prepositional phrases.
REGIONS = _entries("region", [
    ("NORD", "im norden", "in the north", "北部"), ("SUED", "im süden", "in the south", "南部"),
    ("OST", "im osten", "in the east", "东部"), ("WEST", "im westen", "in the west", "西部"),
    ("NORDWEST", "im nordwesten", "in the northwest", "西北部"),
    ("SUEDOST", "im südosten", "in the southeast", "东南部"),
    ("NORDOST", "im nordosten", "in the northeast", "东北部"),
    ("SUEDWEST", "im südwesten", "in the southwest", "西南部"),
    ("MITTE", "in der mitte", "in the centre", "中部"),
    ("KUESTE", "an der küste", "on the coast", "沿海地区"),
    ("BERG", "in den bergen", "in the mountains", "山区"),
    ("ALPEN", "in den alpen", "in the alps", "阿尔卑斯山区"),
    ("RHEIN", "am rhein", "along the rhine", "莱茵河沿岸"),
    ("BAYERN", "in bayern", "in bavaria", "巴伐利亚"),
    ("FLACHLAND", "im flachland", "in the lowlands", "平原地区"),
    ("MEER", "auf der see", "at sea", "海上"),
    ("INSEL", "auf den inseln", "on the islands", "岛屿"),
    ("TAL", "in den tälern", "in the valleys", "山谷"),
    ("UEBERALL", "überall", "everywhere", "各地"),
])
WEATHER = _entries("weather", [
    ("REGEN", "regen", "rain", "雨", "m"), ("SCHNEE", "schnee", "snow", "雪", "m"),
    ("GEWITTER", "gewitter", "thunderstorms", "雷雨", "n"), ("NEBEL", "nebel", "fog", "雾", "m"),
    ("SCHAUER", "schauer", "showers", "阵雨", "pl"), ("HAGEL", "hagel", "hail", "冰雹", "m"),
    ("GLATTEIS", "glatteis", "black ice", "道路结冰", "n"),
    ("FROST", "frost", "frost", "霜冻", "m"),
    ("NIESEL", "nieselregen", "drizzle", "毛毛雨", "m"),
    ("SCHNEEREGEN", "schneeregen", "sleet", "雨夹雪", "m"),
    ("WOLKE", "wolken", "clouds", "云", "pl"), ("SONNE", "sonnenschein", "sunshine", "阳光", "m"),
    ("DUNST", "dunst", "haze", "霾", "m"), ("BOE", "böen", "gusts", "阵风", "pl"),
])
# Intensity adjectives: German stems take endings by gender; zh forms prefix the noun.
INTENSITIES = _entries("intensity", [
    ("STARK", "stark", "heavy", "大"), ("LEICHT", "leicht", "light", "小"),
    ("VEREINZELT", "vereinzelt", "scattered", "零星"), ("KRAEFTIG", "kräftig", "strong", "强"),
    ("MAESSIG", "mäßig", "moderate", "中等"),
])
SKIES = _entries("sky", [
    ("FREUNDLICH", "freundlich", "pleasant", "晴朗"), ("BEWOELKT", "bewölkt", "cloudy", "多云"),
    ("KLAR", "klar", "clear", "晴"), ("WECHSELHAFT", "wechselhaft", "changeable", "多变"),
    ("TRUEB", "trüb", "overcast", "阴沉"), ("SONNIG", "sonnig", "sunny", "阳光明媚"),
    ("HEITER", "heiter", "fair", "晴好"),
])
TEMP_ADJS = _entries("tempadj", [
    ("WARM", "warm", "warm", "暖和"), ("KALT", "kalt", "cold", "寒冷"),
    ("KUEHL", "kühl", "cool", "凉爽"),
    ("MILD", "mild", "mild", "温和"), ("HEISS", "heiß", "hot", "炎热"),
    ("SCHWUEL", "schwül", "humid", "闷热"), ("FROSTIG", "frostig", "frosty", "严寒"),
])
NUMBERS = _entries("number", [
    ("ZWEI", "zwei", "two", "二"), ("DREI", "drei", "three", "三"), ("VIER", "vier", "four", "四"),
    ("FUENF", "fünf", "five", "五"), ("SECHS", "sechs", "six", "六"),
    ("SIEBEN", "sieben", "seven", "七"), ("ACHT", "acht", "eight", "八"),
    ("NEUN", "neun", "nine", "九"), ("ZEHN", "zehn", "ten", "十"), ("ELF", "elf", "eleven", "十一"),
    ("ZWOELF", "zwölf", "twelve", "十二"), ("FUENFZEHN", "fünfzehn", "fifteen", "十五"),
    ("ACHTZEHN", "achtzehn", "eighteen", "十八"), ("ZWANZIG", "zwanzig", "twenty", "二十"),
    ("FUENFUNDZWANZIG", "fünfundzwanzig", "twenty five", "二十五"),
    ("DREISSIG", "dreißig", "thirty", "三十"),
])
TRENDS = _entries("trend", [
    ("STEIGEN", "steigen", "rise", "上升"), ("SINKEN", "sinken", "fall", "下降"),
    ("BLEIBEN", "bleiben", "stay the same", "保持不变"),
])
FUNCTION = _entries("function", [
    ("TEMPERATUR", "temperaturen", "temperatures", "气温"), ("GRAD", "grad", "degrees", "度"),
    ("MINUS", "minus", "minus", "零下"), ("WIND", "wind", "wind", "风"),
])
#: English fingerspelled city names (region slot, lang="en" only).
CITIES: tuple[str, ...] = ("BOSTON", "DENVER", "AUSTIN", "DALLAS", "SEATTLE", "CHICAGO",
                           "PHOENIX", "MIAMI", "DETROIT", "OMAHA", "TULSA", "RENO")
FINGERSPELL_PREFIX = "fs-"

CATEGORIES: dict[str, list[Entry]] = {
    "day": DAYS, "daytime": DAYTIMES, "sequencer": SEQUENCERS, "region": REGIONS,
    "weather": WEATHER, "intensity": INTENSITIES, "sky": SKIES, "tempadj": TEMP_ADJS,
    "number": NUMBERS, "trend": TRENDS, "function": FUNCTION,
}
LEXICON: dict[str, Entry] = {e.gloss: e for entries in CATEGORIES.values() for e in entries}

# German strong adjective endings: accusative without article (m, f, n, pl) and nominative
# masculine after "ein" (the wind clause).
_ACC_ENDING = {"m": "en", "f": "e", "n": "es", "pl": "e"}
_WIND_EN = {"STARK": "strong", "LEICHT": "light", "MAESSIG": "moderate", "KRAEFTIG": "brisk"}
_WIND_ZH = {"STARK": "大", "LEICHT": "微", "MAESSIG": "中等", "KRAEFTIG": "强"}


@dataclass(frozen=True)
class Sentence:
    """A gloss sequence and its translation; ``names`` are the fingerspelled names in order."""

    glosses: tuple[str, ...]
    text: str
    names: tuple[str, ...] = ()

    @property
    def gloss(self) -> str:
        return " ".join(self.glosses)


_UNTRIMMED = ("function", "sequencer")  # used by fixed clause templates: never trimmed


def restrict(vocab_size: int | None) -> dict[str, list[Entry]]:
    """Categories trimmed to about ``vocab_size`` glosses in all (each keeps at least two;
    the function words and sequencers the clause templates use are always kept)."""
    if vocab_size is None:
        return CATEGORIES
    total = len(LEXICON)
    if vocab_size < 2 * len(CATEGORIES):
        raise ValueError(f"vocab_size={vocab_size} is too small: the grammar needs at least "
                         f"{2 * len(CATEGORIES)} glosses (two per category)")
    frac = min(1.0, vocab_size / total)
    return {name: entries if name in _UNTRIMMED
            else entries[: max(2, math.floor(len(entries) * frac))]
            for name, entries in CATEGORIES.items()}


def _pick(rng: np.random.Generator, items: list) -> object:
    return items[int(rng.integers(len(items)))]


@dataclass
class _Clause:
    glosses: list[str]
    de: str
    en: str
    zh: str
    names: list[str]


def _time_phrase(day: Entry | None, daytime: Entry | None) -> tuple[str, str, str]:
    """German, English and Chinese realisations of an optional day + optional daytime."""
    if day is None and daytime is None:
        return "", "", ""
    if day is None:
        assert daytime is not None
        de = "in der nacht" if daytime.gloss == "NACHT" else f"am {daytime.de}"
        en = {"noon": "at noon", "night": "at night"}.get(daytime.en, f"in the {daytime.en}")
        return de, en, daytime.zh
    if daytime is None:
        de = day.de if day.gloss in ("HEUTE", "MORGEN") else f"am {day.de}"
        en = day.en if day.gloss in ("HEUTE", "MORGEN") else f"on {day.en}"
        if day.gloss == "WOCHENENDE":
            en = "at the weekend"
        return de, en, day.zh
    if day.gloss in ("HEUTE", "MORGEN"):
        tail = "früh" if daytime.gloss == "FRUEH" else daytime.de
        de = f"{day.de} {tail}"
        if day.gloss == "HEUTE":
            en = {"noon": "at noon today", "night": "tonight"}.get(daytime.en,
                                                                   f"this {daytime.en}")
        else:
            en = "tomorrow at noon" if daytime.en == "noon" else f"tomorrow {daytime.en}"
    else:
        de = f"am {day.de}{daytime.de}"  # compounding: am donnerstagabend
        en = f"on {day.en} at noon" if daytime.en == "noon" else f"on {day.en} {daytime.en}"
    return de, en, day.zh + daytime.zh


def _clause(kind: str, cats: dict[str, list[Entry]], time: tuple[list[str], tuple[str, str, str]],
            lang: str, rng: np.random.Generator) -> _Clause:
    """One clause: glosses in sign order and its three realisations."""
    time_glosses, (t_de, t_en, t_zh) = time
    names: list[str] = []
    if lang == "en" and rng.random() < 0.35:
        city = str(_pick(rng, list(CITIES)))
        names.append(city)
        region = Entry(FINGERSPELL_PREFIX + city, "region", "", f"in {city.lower()}", "")
    else:
        region = _pick(rng, cats["region"])  # type: ignore[assignment]
    front_de = t_de or region.de
    rest_de = f"{region.de} " if t_de else ""
    en_time = f"{t_en} " if t_en else ""
    zh_front = t_zh + region.zh
    g = [*time_glosses, region.gloss]
    choice = int(rng.integers(2))

    if kind == "precipitation":
        w: Entry = _pick(rng, cats["weather"])  # type: ignore[assignment]
        g.append(w.gloss)
        np_de, np_en, np_zh = w.de, w.en, w.zh
        if rng.random() < 0.6:
            i: Entry = _pick(rng, cats["intensity"])  # type: ignore[assignment]
            g.append(i.gloss)
            np_de = f"{i.de}{_ACC_ENDING[w.gender]} {w.de}"
            np_en, np_zh = f"{i.en} {w.en}", i.zh + w.zh
        verb = ("gibt es", "erwarten wir")[choice]
        de = f"{front_de} {verb} {rest_de}{np_de}"
        en = f"{en_time}there will be {np_en} {region.en}"
        zh = f"{zh_front}{('有', '将有')[choice]}{np_zh}"
    elif kind == "temperature":
        g.append("TEMPERATUR")
        minus = rng.random() < 0.3
        if minus:
            g.append("MINUS")
        n: Entry = _pick(rng, cats["number"])  # type: ignore[assignment]
        g += [n.gloss, "GRAD"]
        value_de = f"minus {n.de}" if minus else n.de
        value_en = f"minus {n.en}" if minus else n.en
        if choice == 0:
            de = f"{front_de} erreichen die temperaturen {rest_de}{value_de} grad"
        else:
            which = "tiefstwerte" if minus else "höchstwerte"
            de = f"{front_de} liegen die {which} {rest_de}bei {value_de} grad"
        en = f"{en_time}temperatures will reach {value_en} degrees {region.en}"
        zh = f"{zh_front}气温{('', '将')[choice]}达到{'零下' if minus else ''}{n.zh}度"
    elif kind == "trend":
        tr: Entry = _pick(rng, cats["trend"])  # type: ignore[assignment]
        g += ["TEMPERATUR", tr.gloss]
        noun = ("temperaturen", "werte")[choice]
        tail = "gleich" if tr.gloss == "BLEIBEN" else ""
        de = f"{front_de} {tr.de} die {noun} {rest_de}{tail}".rstrip()
        en = f"{en_time}temperatures will {tr.en} {region.en}"
        zh = f"{zh_front}气温{tr.zh}"
    elif kind in ("sky", "tempadj"):
        a: Entry = _pick(rng, cats[kind])  # type: ignore[assignment]
        g.append(a.gloss)
        verb = (("ist es", "bleibt es") if kind == "sky" else ("wird es", "ist es"))[choice]
        de = f"{front_de} {verb} {rest_de}{a.de}"
        en = f"{en_time}it will {('be', 'turn')[choice] if kind == 'tempadj' else 'be'} " \
             f"{a.en} {region.en}"
        zh = f"{zh_front}{('天气', '')[choice]}{a.zh}"
    elif kind == "wind":
        options = [e for e in cats["intensity"] if e.gloss in _WIND_EN]
        s: Entry = _pick(rng, options)  # type: ignore[assignment]
        g += ["WIND", s.gloss]
        if choice == 0:
            de = f"{front_de} weht {rest_de}ein {s.de}er wind"
        else:
            de = f"{front_de} gibt es {rest_de}einen {s.de}en wind"
        en = f"{en_time}there will be a {_WIND_EN[s.gloss]} wind {region.en}"
        zh = f"{zh_front}有{_WIND_ZH[s.gloss]}风"
    else:  # pragma: no cover - internal
        raise AssertionError(kind)
    return _Clause(g, de, en, zh, names)


_CLAUSE_KINDS = ("precipitation", "temperature", "trend", "sky", "wind", "tempadj")
_CLAUSE_P = np.array([0.3, 0.15, 0.1, 0.15, 0.1, 0.2])


def _first_time(cats: dict[str, list[Entry]], rng: np.random.Generator
                ) -> tuple[list[str], tuple[str, str, str]]:
    r = rng.random()
    if r < 0.3:
        return [], ("", "", "")
    day: Entry | None = _pick(rng, cats["day"])  # type: ignore[assignment]
    daytime: Entry | None = None
    if r > 0.85:
        day = None
    if (day is None or (day.gloss != "WOCHENENDE" and rng.random() < 0.35)):
        daytime = _pick(rng, cats["daytime"])  # type: ignore[assignment]
    glosses = [e.gloss for e in (day, daytime) if e is not None]
    return glosses, _time_phrase(day, daytime)


def _later_time(cats: dict[str, list[Entry]], rng: np.random.Generator
                ) -> tuple[list[str], tuple[str, str, str]]:
    r = rng.random()
    if r < 0.5:
        return [], ("", "", "")
    if r < 0.8:
        s: Entry = _pick(rng, cats["sequencer"])  # type: ignore[assignment]
        return [s.gloss], (s.de, s.en, s.zh)
    daytime: Entry = _pick(rng, cats["daytime"])  # type: ignore[assignment]
    return [daytime.gloss], _time_phrase(None, daytime)


def sample_sentence(rng: np.random.Generator, lang: str = "de",
                    cats: dict[str, list[Entry]] | None = None) -> Sentence:
    """A random sentence (1–3 clauses) drawn with ``rng``; deterministic given its state."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; the synthetic corpus speaks {LANGS}")
    cats = cats or CATEGORIES
    n_clauses = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    clauses = []
    for k in range(n_clauses):
        time = _first_time(cats, rng) if k == 0 else _later_time(cats, rng)
        kind = str(rng.choice(_CLAUSE_KINDS, p=_CLAUSE_P))
        clauses.append(_clause(kind, cats, time, lang, rng))
    glosses = tuple(gl for c in clauses for gl in c.glosses)
    if lang == "de":
        text = " und ".join(c.de for c in clauses)
    elif lang == "en":
        text = " and ".join(c.en for c in clauses)
    else:
        text = "，".join(c.zh for c in clauses)
    names = tuple(n for c in clauses for n in c.names)
    return Sentence(glosses, " ".join(text.split()) if lang != "zh" else text, names)


def vocabulary(cats: dict[str, list[Entry]] | None = None) -> list[str]:
    """The gloss vocabulary (fingerspelled names excluded), in lexicon order."""
    cats = cats or CATEGORIES
    return [e.gloss for entries in cats.values() for e in entries]
