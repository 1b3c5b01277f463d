"""One dialect layer: each API surface renders its own errors, chosen by the route's resource.

A dialect plugin registers a :class:`Dialect` (``register_dialects`` hook) and its resources say
which one they speak with a class attribute, ``dialect = "openai"``. Every error on such a route
takes the app's one error path (app.py): a ``ModelRunnerError`` a resource raises, the body
reader's 400, a Falcon 404/405/413, the trust boundary's 401/403 (raised before routing: the
route is looked up for it), a capability the model lacks (:class:`~modelrunner.Unsupported`,
:class:`~modelrunner.ContextExceeded`, raised by the gateway for every dialect), or a runner's
own error answer (the gateway raises it with the runner's status and message). The dialect gives
the body; routes of no dialect (the core's DMR routes) answer DMR's plain text.

Before this layer, plugins claimed errors by matching path strings in a first-result hook, and
the Anthropic plugin had to run first because the OpenAI one claimed every path with "/v1/".
"""

from falcon.routing import CompiledRouter

from .errors import KIND_BY_STATUS, ModelRunnerError


class Dialect:
    """An API surface's way of answering errors. Subclass it, set ``name`` and implement
    :meth:`error_body`; register an instance from the ``register_dialects`` hook."""

    name = ""
    content_type = "application/json"

    def error_body(self, error):
        """The body (bytes) for ``error``, a :class:`~modelrunner.ModelRunnerError` whose message
        has no path of this machine in it: ``status``, ``kind``, ``param``, ``code``, and for
        the typed errors their fields (``capability``, ``prompt_tokens``, ``context``...)."""
        raise NotImplementedError


class Router(CompiledRouter):
    """Falcon's router, keeping the routes it was given: the app looks up the resource of a
    request refused before routing (its dialect renders the refusal), and tests walk them."""

    def __init__(self):
        super().__init__()
        self.routes = []  # (uri template, resource), in the order added

    def add_route(self, uri_template, resource, **kwargs):
        super().add_route(uri_template, resource, **kwargs)
        self.routes.append((uri_template, resource))


def resource_of(req, router):
    """The resource that serves ``req``: the one Falcon routed to (kept by :class:`Remember`),
    else the router's answer for its path (the request was refused before routing)."""
    resource = getattr(req.context, "resource", None)
    if resource is None:
        found = router.find(req.path, req)
        resource = found[0] if found else None
    return resource


class Remember:
    """Middleware: keep the routed resource on ``req.context`` for the error path."""

    def process_resource(self, req, resp, resource, params):
        req.context.resource = resource


def as_error(status, message, kind=None):
    """A Falcon ``HTTPError`` (or anything else with a status) as a ``ModelRunnerError``."""
    return ModelRunnerError(message, status=status,
                            kind=kind or KIND_BY_STATUS.get(status, "server_error"))


def render(dialects, resource, error):
    """``(content_type, body)`` for ``error`` on a route served by ``resource``, or None for a
    route of no dialect (DMR's plain text)."""
    dialect = dialects.get(getattr(resource, "dialect", None))
    if dialect is None:
        return None
    return dialect.content_type, dialect.error_body(error)


def collect(hook):
    """The registered dialects by name (the first registered of a name wins)."""
    dialects = {}
    hook.register_dialects(register=lambda d: dialects.setdefault(d.name, d))
    return dialects

