"""`--debug=explain` names only the dependencies that really changed.

SCons' Node.explain asks each dependency's decider without the target (`repo_node`), unlike the
build decision itself (Node.changed passes the target). With the content-timestamp decider
(File.changed_timestamp_then_content) the dependency then looks for its previous signature in its
*own* stored build info, never finds it, and is reported as changed: after one registry edit every
CAB of the image was listed for layout.json and MainOS.img (and hashed again to say so). The
deciders are wrapped so that a missing `repo_node` is the target, as in Node.changed, so explain
gives the build's own reasons. (SCons 4.11 Node/__init__.py: explain() vs changed().)
"""

from __future__ import annotations

import SCons.Node


def _with_target(decide):
    def decider(dependency, target, prev_ni, repo_node=None):
        return decide(dependency, target, prev_ni, target if repo_node is None else repo_node)

    decider.ffuforge_original = decide  # type: ignore[attr-defined]
    return decider


def install() -> None:
    """Wrap SCons' built-in deciders (once; a second generate() finds them wrapped)."""
    for index, decide in list(SCons.Node._decider_map.items()):
        if not hasattr(decide, "ffuforge_original"):
            SCons.Node._decider_map[index] = _with_target(decide)
