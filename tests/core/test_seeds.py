"""robolearn.core.seeds: episode reset seeds, evaluation and collection streams apart."""

from robolearn.core.seeds import episode_seed


def test_episode_seeds_differ_across_base_seeds():
    seeds = {episode_seed(s, i) for s in range(3) for i in range(50)}
    assert len(seeds) == 150


def test_collection_never_reuses_an_evaluation_initial_state():
    evals = {episode_seed(s, i) for s in range(5) for i in range(200)}
    collects = {episode_seed(s, i, "collect") for s in range(5) for i in range(200)}
    assert all(x % 2 == 0 for x in evals) and all(x % 2 == 1 for x in collects)
    assert not evals & collects


def test_seeds_are_stable_across_releases():
    """Runs record these seeds (results.json, store file indices): they must not change."""
    assert [episode_seed(0, i) for i in range(3)] == [2968811710, 3964924996, 3141116542]
    assert episode_seed(0, 0, "collect") % 2 == 1
