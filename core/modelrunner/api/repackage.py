"""POST /models/{ref}/repackage ``{"target", "context_size"?, "chat_template"?}`` -> 201.

DMR's lightweight ``package --from``: the stored model ``ref`` under a new name ``target`` with a
new context size or chat template (``chat_template`` is the template's text, modelrunner's
addition to DMR's body). The weights are shared, not copied (packaging/repackage.py); the new
blobs are written and the manifest added in one store operation, so a failure leaves nothing.
An unknown ``ref`` is 404, a bad body 400.
"""

import falcon

from .. import reference as refs
from ..bodies import read_json_body
from ..packaging import PackagingError
from ..packaging.repackage import repackage
from ..store import StoreError
from ..store.operation import operation
from .errors import dmr_error


def repackage_model(runtime, req, resp, source):
    """``source`` is the stored Model (already found: 404 before the body is read)."""
    body = read_json_body(req)
    target = body.get("target")
    if not isinstance(target, str) or not target.strip():
        raise dmr_error(400, "target is required")
    context_size = body.get("context_size", body.get("context-size"))
    template = body.get("chat_template")
    try:
        if refs.is_model_id(target) or refs.parse(target).digest:
            # a tag that looks like a digest would make a pinned name find this model
            raise refs.InvalidReference("target must be a name[:tag], not a digest or model ID")
        made = repackage(source.manifest, source.config, context_size=context_size,
                         chat_template=template)
        with operation(runtime.store) as store:
            for data in made.blobs.values():
                store.write_blob_bytes(data)
            model = store.add_model(made.manifest_bytes, tags=[target])
    except (PackagingError, refs.InvalidReference) as e:
        raise dmr_error(400, str(e))
    except StoreError as e:
        raise dmr_error(e.status, str(e))
    resp.status = falcon.HTTP_201
    shown = refs.display(refs.normalize(target))
    resp.media = {"message": f"Model repackaged successfully as {shown}", "id": model.id,
                  "target": refs.normalize(target)}
