import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffuforge.errors import ConfigError, FFUError
from ffuforge.package.buildfilter import evaluate, parse

ARM = {"build.arch": "arm", "build.iswow": "false"}
WOW = {"build.arch": "arm", "build.iswow": "true"}
X64 = {"build.arch": "amd64", "build.iswow": "false"}


@pytest.mark.parametrize(
    "text,env,expected",
    [
        ("not build.isWow and build.arch = arm", ARM, True),
        ("not build.isWow and build.arch = arm", WOW, False),
        ("(not build.isWow) and (build.arch = arm)", ARM, True),
        ("build.arch = ARM", ARM, True),
        ("build.arch != arm", X64, True),
        ("build.arch = arm or build.arch = amd64", X64, True),
        ("build.arch = arm or build.arch = arm64 and build.isWow", ARM, True),  # and binds tighter
        ("(build.arch = arm or build.arch = arm64) and build.isWow", ARM, False),
        ("not not build.isWow", WOW, True),
        ("build.isWow", WOW, True),
        ("BUILD.ARCH = arm AND NOT build.iswow", ARM, True),
        (None, ARM, True),
        ("   ", ARM, True),
    ],
)
def test_evaluate(text, env, expected):
    assert evaluate(text, env) is expected


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("build.arch =", "expected a value"),
        ("build.arch = arm and", "ends too early"),
        ("(build.arch = arm", "missing ')'"),
        ("build.arch = arm)", "unexpected ')'"),
        ("build.cpu = arm", "unknown variable 'build.cpu'"),
        ("build.arch == arm", "expected a value"),
        ("build.arch = arm & build.isWow", "unexpected character '&'"),
        ("and", "expected a build variable"),
        ("", "empty expression"),
    ],
)
def test_errors(text, fragment):
    with pytest.raises(FFUError) as exc:
        parse(text)
    assert fragment in str(exc.value)


def test_errors_are_config_errors():
    with pytest.raises(ConfigError, match="missing '\\)'"):
        parse("(build.arch = arm")


def test_variables():
    assert parse("not build.isWow and build.arch = arm").variables() == {"build.iswow", "build.arch"}


_atom = st.sampled_from(["build.arch = arm", "build.arch != x86", "build.isWow", "build.arch = amd64"])


def _exprs():
    return st.recursive(
        _atom,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
            st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
            st.builds(lambda a: f"not ({a})", inner),
        ),
        max_leaves=12,
    )


def _py(text: str, env) -> bool:
    code = (
        text.replace("build.arch != x86", f"{env['build.arch'] != 'x86'}")
        .replace("build.arch = arm", f"{env['build.arch'] == 'arm'}")
        .replace("build.arch = amd64", f"{env['build.arch'] == 'amd64'}")
        .replace("build.isWow", f"{env['build.iswow'] == 'true'}")
    )
    return eval(code)  # noqa: S307 - test oracle over a closed alphabet


@given(_exprs(), st.sampled_from([ARM, WOW, X64]))
def test_matches_python_semantics(text, env):
    assert evaluate(text, env) == _py(text, env)


@given(st.text(max_size=60))
def test_never_crashes(text):
    try:
        parse(text)
    except FFUError:
        pass
