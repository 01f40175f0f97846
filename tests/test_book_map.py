"""Chapter 0's map of the book names every chapter that exists, with the chapter's own title."""

import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TITLE = re.compile(r"^# # (\d+)\. (.+)$", re.MULTILINE)


def chapter_titles() -> dict[int, str]:
    """{number: title} from the first `# # N. Title` line of every notebooks/NN_*.py."""
    titles = {}
    for source in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        match = TITLE.search(source.read_text(encoding="utf-8"))
        assert match, f"{source.name} has no '# # N. Title' line"
        assert int(match.group(1)) == int(source.name[:2]), f"{source.name}: {match.group(0)}"
        titles[int(match.group(1))] = match.group(2).strip()
    return titles


def map_rows() -> dict[int, str]:
    """{number: title} from the rows of chapter 0's map table."""
    text = (NOTEBOOKS / "00_start_here.py").read_text(encoding="utf-8")
    section = text.split("## Map of the book", 1)[1]
    return {int(number): title.strip()
            for number, title in re.findall(r"^# \| (\d+) \| ([^|]+) \|", section, re.MULTILINE)}


def test_the_map_names_every_chapter_with_its_title():
    titles, rows = chapter_titles(), map_rows()
    assert len(titles) >= 12  # chapters 0 to 11 at least; later ones are covered as they land
    missing = {n: t for n, t in titles.items() if n not in rows}
    assert not missing, f"chapter 0's map lacks {missing}"
    wrong = {n: (rows[n], t) for n, t in titles.items() if rows[n] != t}
    assert not wrong, f"map title differs from the chapter's (map, chapter): {wrong}"
    assert set(rows) == set(titles), f"the map names chapters that do not exist: " \
                                     f"{sorted(set(rows) - set(titles))}"
