"""The bundled example (`make demo`) finds its own leak: a shorter run of
examples/leaky_service.py under `memhound run`, on every interpreter of the
matrix (it is stdlib only), reports the fragment cache's fill line on top.
"""

from conftest import ROOT, assert_top_growth

EXAMPLE = ROOT / "examples" / "leaky_service.py"


def _leak_site():
    for i, line in enumerate(EXAMPLE.read_text().splitlines(), 1):
        if "return _TEMPLATE.format(" in line:
            return (str(EXAMPLE), i)
    raise AssertionError("the example's leaking line is gone")


def test_demo_reports_the_example_leak(py, mh):
    r = mh.run(py, [EXAMPLE, "--seconds", "3", "--clients", "2"])
    assert "fragment cache holds" in r.stdout, r.stdout
    caps = mh.captures()
    assert len(caps) == 1, caps
    rep = mh.report_json(caps)
    top = assert_top_growth(rep, _leak_site())
    assert top["function"] == "_render_fragment", top
    assert top["share"] > 0.5, top
    text = mh.report(caps).stdout
    assert "leaky_service.py:%d" % _leak_site()[1] in text, text


def test_demo_verdict_is_leak(mh):
    """`make demo`'s full run (its default 12 s) ends with a leak verdict
    that names the cache's line (docs/verdict.md), on the system Python."""
    py = "/usr/bin/python3"
    mh.run(py, [EXAMPLE])
    caps = mh.captures()
    text = mh.report(caps).stdout
    verdict = text[text.index("Verdict: "):]
    assert verdict.startswith("Verdict: leak"), verdict
    assert "growth sites carrying it: %s:%d" % _leak_site() in verdict, \
        verdict
    rep = mh.report_json(caps)
    assert rep["verdict"]["leak"], rep["verdict"]
