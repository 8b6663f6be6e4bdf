"""versions/registry.shortcut: GTO's own parser reads what `mlcd restore` takes (fast, no repo)."""

import pytest

from mlcd.versions.registry import shortcut


@pytest.mark.parametrize(
    ("ref", "name", "stage", "version", "latest"),
    [
        ("model#production", "model", "production", None, False),
        ("model@v1.4.0", "model", None, "v1.4.0", False),
        ("model@latest", "model", None, None, True),
        ("model@greatest", "model", None, None, True),
        ("dir:model#staging", "dir:model", "staging", None, False),
    ],
)
def test_gto_shortcuts_are_read_by_gto(ref, name, stage, version, latest):
    found = shortcut(ref)
    assert found is not None
    assert (found.name, found.stage, found.version, found.latest) == (name, stage, version, latest)


@pytest.mark.parametrize("ref", ["1.4.0", "production", "HEAD", "0a1b2c3", "model@1.4.0", "model#-bad-"])
def test_what_is_not_a_shortcut_is_left_to_versions_stages_and_commits(ref):
    assert shortcut(ref) is None
