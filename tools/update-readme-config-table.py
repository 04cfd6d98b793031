"""Rewrite the README's table of stirfried_* settings from stirfried.settings.

Run after adding or changing a setting: python tools/update-readme-config-table.py
"""

from pathlib import Path

from stirfried.settings import reference_table

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| Key | Type | Default | Description |"

text = README.read_text(encoding="utf-8")
start = text.index(HEADER)
end = text.index("\n\n", start)
README.write_text(text[:start] + reference_table() + text[end:], encoding="utf-8")
print("README.md: configuration table updated")
