"""Which node a runner goes to: pure functions over the cluster's nodes, tested without Ray.

Rules: a model with a configured node label goes to the node carrying it (a Ray node label
``modelrunner/node``, a custom resource of that name, the node's IP or ID prefix); else to the
node with the most free memory that fits the runner's estimate. Each node's budget is its own
(Ray's ``memory`` resource, or the ``ray_node_memory`` setting), less what the runners placed
there hold. A runner that uses GPUs (``Engine.gpus``) goes only to a node with that many GPUs
not yet handed to other runners. Nothing fits: a 503 that says what would fit where. A node that offers Ray no CPU
(``--num-cpus=0``: a head, or the API's own pod joining the cluster) takes no runners.
"""

from dataclasses import dataclass

from modelrunner import SchedulerError, units

LABEL = "modelrunner/node"


@dataclass
class Node:
    id: str
    ip: str
    labels: dict
    resources: dict
    budget: int

    @property
    def gpus(self):
        return int(self.resources.get("GPU") or 0)

    @property
    def name(self):
        """What ps shows: the node's label, else its IP and the start of its ID."""
        return self.labels.get(LABEL) or f"{self.ip}/{self.id[:8]}"

    def answers_to(self, label):
        return (self.labels.get(LABEL) == label or label in self.resources
                or label == self.ip or (len(label) >= 6 and self.id.startswith(label)))


def from_ray(entries, node_memory=None):
    """``Node``s of the alive entries of ``ray.nodes()`` that offer CPUs."""
    nodes = []
    for e in entries:
        resources = e.get("Resources") or {}
        if not e.get("Alive") or not resources.get("CPU"):
            continue
        budget = int(node_memory or resources.get("memory") or 0)
        nodes.append(Node(e["NodeID"], e.get("NodeManagerAddress", ""), dict(e.get("Labels") or {}),
                          resources, budget))
    return nodes


def http_url(host, port):
    """A runner's address on a node (IPv6 hosts in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def label_for(labels, model):
    """The node label configured for ``model`` (any of its tags, or its ID), or None."""
    for name in [*model.tags, model.id]:
        if name in labels:
            return labels[name]
        short = name.removeprefix("docker.io/").removesuffix(":latest")
        if short in labels:
            return labels[short]
    return None


def choose(nodes, held, name, memory, label=None, gpus=0, held_gpus=None):
    """The node for a runner of ``memory`` bytes and ``gpus`` GPUs; ``held`` and ``held_gpus``
    map node ID -> bytes and GPUs of the runners placed there."""
    held_gpus = held_gpus or {}

    def free(node):
        return node.budget - held.get(node.id, 0)

    def free_gpus(node):
        return node.gpus - held_gpus.get(node.id, 0)

    if label is not None:
        matching = [n for n in nodes if n.answers_to(label)]
        if not matching:
            names = ", ".join(sorted(n.name for n in nodes)) or "none"
            raise SchedulerError(f"cannot place {name}: no node of the Ray cluster is labelled "
                                 f"{label!r} (nodes: {names})", status=503)
        candidates = matching
    else:
        candidates = nodes
    if gpus:
        with_gpus = [n for n in candidates if free_gpus(n) >= gpus]
        if not with_gpus:
            where = ", ".join(f"{n.name} has {max(0, free_gpus(n))} of {n.gpus}"
                              for n in candidates) or "the cluster has no node"
            raise SchedulerError(f"cannot place {name}: it needs {gpus} free GPU"
                                 f"{'s' if gpus > 1 else ''} on one node; {where}", status=503)
        candidates = with_gpus
    fits = [n for n in candidates if free(n) >= memory]
    if fits:
        return max(fits, key=free)
    where = ", ".join(f"{n.name} has {units.format_size(max(0, free(n)))} free of "
                      f"{units.format_size(n.budget)}" for n in candidates) or "the cluster has no node"
    raise SchedulerError(f"not enough memory on any node to place {name}: it needs "
                         f"{units.format_size(memory)}; {where}", status=503)
