"""Which node a runner goes to (pure: no cluster needed)."""

import pytest

from modelrunner import SchedulerError
from modelrunner_ray.nodes import Node, choose, from_ray, label_for

GIB = 1024**3


class M:
    def __init__(self, tags, id="sha256:abc"):
        self.tags, self.id = tags, id


def cluster():
    return [Node("aaaaaaaa11", "10.0.0.1", {"modelrunner/node": "gpu"}, {"GPU": 1}, 8 * GIB),
            Node("bbbbbbbb22", "10.0.0.2", {}, {"fast-disk": 1}, 4 * GIB)]


def test_a_labelled_model_goes_to_its_node_even_when_another_has_more_room():
    nodes = cluster()
    assert choose(nodes, {"aaaaaaaa11": 7 * GIB}, "m", GIB, label="gpu").id == "aaaaaaaa11"
    assert choose(nodes, {}, "m", GIB, label="fast-disk").id == "bbbbbbbb22"
    assert choose(nodes, {}, "m", GIB, label="10.0.0.2").id == "bbbbbbbb22"


def test_without_a_label_the_node_with_most_free_memory_that_fits_wins():
    nodes = cluster()
    assert choose(nodes, {}, "m", GIB).id == "aaaaaaaa11"
    assert choose(nodes, {"aaaaaaaa11": 6 * GIB}, "m", GIB).id == "bbbbbbbb22"


def test_nothing_fits_is_a_503_saying_what_is_free_where():
    with pytest.raises(SchedulerError) as refused:
        choose(cluster(), {"aaaaaaaa11": 6 * GIB}, "ai/big", 5 * GIB)
    assert refused.value.status == 503
    assert "gpu has 2.00GiB free of 8.00GiB" in str(refused.value)
    assert "10.0.0.2/bbbbbbbb has 4.00GiB free" in str(refused.value)


def test_a_label_no_node_carries_is_a_503_naming_the_nodes():
    with pytest.raises(SchedulerError, match=r"labelled 'tpu' \(nodes: 10.0.0.2/bbbbbbbb, gpu\)"):
        choose(cluster(), {}, "m", GIB, label="tpu")


def test_labels_are_configured_by_the_names_users_type():
    labels = {"ai/smollm2": "gpu"}
    assert label_for(labels, M(["docker.io/ai/smollm2:latest"])) == "gpu"
    assert label_for(labels, M(["docker.io/ai/other:latest"])) is None


def test_dead_nodes_and_nodes_without_cpus_take_no_runners_and_budgets_come_from_ray():
    entries = [{"NodeID": "x" * 10, "Alive": True, "NodeManagerAddress": "10.0.0.9",
                "Resources": {"memory": 3 * GIB, "CPU": 4}, "Labels": {}},
               {"NodeID": "y" * 10, "Alive": False, "NodeManagerAddress": "10.0.0.8",
                "Resources": {"memory": 9 * GIB, "CPU": 4}},
               {"NodeID": "z" * 10, "Alive": True, "NodeManagerAddress": "10.0.0.7",
                "Resources": {"memory": 9 * GIB}, "Labels": {}}]
    assert [n.budget for n in from_ray(entries)] == [3 * GIB]
    assert [n.budget for n in from_ray(entries, node_memory=GIB)] == [GIB]


def test_a_runner_that_uses_gpus_goes_only_where_that_many_are_free():
    nodes = cluster() + [Node("cccccccc33", "10.0.0.3", {}, {"GPU": 4}, 2 * GIB)]
    # the node with most memory has 1 GPU: a tensor-parallel-2 runner goes to the 4-GPU node
    assert choose(nodes, {}, "m", GIB, gpus=2).id == "cccccccc33"
    assert choose(nodes, {}, "m", GIB, gpus=1).id == "aaaaaaaa11"
    # GPUs handed to runners already placed are not free
    assert choose(nodes, {}, "m", GIB, gpus=2, held_gpus={"cccccccc33": 2}).id == "cccccccc33"
    with pytest.raises(SchedulerError) as info:
        choose(nodes, {}, "m", GIB, gpus=2, held_gpus={"cccccccc33": 3})
    assert info.value.status == 503
    assert "needs 2 free GPUs on one node" in str(info.value)
    assert "10.0.0.3/cccccccc has 1 of 4" in str(info.value)
    # a label still wins, but only with the GPUs
    with pytest.raises(SchedulerError, match="gpu has 0 of 1"):
        choose(nodes, {}, "m", GIB, label="gpu", gpus=1, held_gpus={"aaaaaaaa11": 1})
