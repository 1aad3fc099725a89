"""The errors page's table of bad inputs is exactly what users get."""

import json

import pytest
from bad_inputs import PAGE, expected_form, matches, table_rows
from scripts import run


@pytest.mark.slow
def test_every_bad_input_in_the_readme_gets_its_message():
    rows = table_rows(PAGE.read_text())
    assert len(rows) >= 40
    out = run("tests/bad_inputs.py")
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["try"] for r in results] == [attempt for _, attempt, _ in rows]
    for r in results:
        assert matches(r["got"], expected_form(r["try"], r["expected"])), (r["what"], r["got"])
