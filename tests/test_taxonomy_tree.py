"""Locating the published tree: setting, environment variable, and the download into the cache."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from wildvalues.taxonomy.tree import TaxonomyError, load_tree, resolve_tree_path


@pytest.fixture()
def mirror(tmp_path, tree_path):
    """A local HTTP server holding values_tree.csv and a file that is not the tree."""
    root = tmp_path / "mirror"
    root.mkdir()
    shutil.copy(tree_path, root / "values_tree.csv")
    (root / "error.html").write_text("<html>proxy says no</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_environment_variable_wins_over_the_setting(tmp_path, tree_path, monkeypatch):
    monkeypatch.setenv("WILDVALUES_TAXONOMY", tree_path)
    assert resolve_tree_path(str(tmp_path / "absent.csv"), None) == tree_path


def test_a_missing_tree_is_downloaded_once_into_the_cache(tmp_path, tree_path, mirror, monkeypatch):
    monkeypatch.delenv("WILDVALUES_TAXONOMY", raising=False)
    monkeypatch.setenv("WILDVALUES_TAXONOMY_URL", f"{mirror}/values_tree.csv")
    cache = tmp_path / "cache"
    path = resolve_tree_path(str(tmp_path / "absent.csv"), str(cache))
    assert path == str(cache / "values_tree.csv")
    assert Path(path).read_bytes() == Path(tree_path).read_bytes()
    assert [n.cluster_id for n in load_tree(path)] == [n.cluster_id for n in load_tree(tree_path)]
    monkeypatch.setenv("WILDVALUES_TAXONOMY_URL", f"{mirror}/gone.csv")  # the cached copy serves now
    assert resolve_tree_path(str(tmp_path / "absent.csv"), str(cache)) == path


def test_a_download_that_is_not_the_tree_is_not_cached(tmp_path, mirror, monkeypatch):
    monkeypatch.delenv("WILDVALUES_TAXONOMY", raising=False)
    monkeypatch.setenv("WILDVALUES_TAXONOMY_URL", f"{mirror}/error.html")
    cache = tmp_path / "cache"
    with pytest.raises(TaxonomyError, match="Hugging Face hub is unreachable"):
        resolve_tree_path(str(tmp_path / "absent.csv"), str(cache))
    assert os.listdir(cache) == []


def test_a_file_in_another_layout_is_a_one_line_error(tmp_path):
    bad = tmp_path / "tree.csv"
    bad.write_text("id,name\n1,x\n")
    with pytest.raises(
        TaxonomyError,
        match=r"expected columns cluster_id,description,name,level,parent_cluster_id,pct_total_occurrences, found id,name",
    ):
        load_tree(str(bad))
