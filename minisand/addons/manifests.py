"""Addon manifests: jinja2 templates rendered to Kubernetes objects (images passed through the mirror rewrite)
and applied with the Kubernetes Python client (create, or patch when present); deleted again on disable."""

from __future__ import annotations

import logging
from typing import Any

from minisand.templating import render

log = logging.getLogger(__name__)


def render_objects(template: str, **values: Any) -> list[dict[str, Any]]:
    import yaml

    text = render(f"addons/{template}", **values)
    return [d for d in yaml.safe_load_all(text) if d]


def _dynamic(client: Any) -> Any:
    from kubernetes import dynamic

    factory: Any = dynamic.DynamicClient
    return factory(client)


def _resource(dyn: Any, obj: dict[str, Any]) -> Any:
    return dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])


def apply(client: Any, objects: list[dict[str, Any]]) -> list[str]:
    from kubernetes.dynamic.exceptions import NotFoundError

    dyn = _dynamic(client)
    done = []
    for obj in objects:
        res = _resource(dyn, obj)
        name = obj["metadata"]["name"]
        ns = obj["metadata"].get("namespace")
        try:
            res.get(name=name, namespace=ns)
        except NotFoundError:
            res.create(body=obj, namespace=ns)
            done.append(f"{obj['kind']}/{name} created")
            continue
        res.patch(body=obj, name=name, namespace=ns, content_type="application/merge-patch+json")
        done.append(f"{obj['kind']}/{name} configured")
    log.info("applied: %s", done)
    return done


def delete(client: Any, objects: list[dict[str, Any]]) -> list[str]:
    from kubernetes.dynamic.exceptions import NotFoundError

    dyn = _dynamic(client)
    done = []
    for obj in reversed(objects):
        res = _resource(dyn, obj)
        name = obj["metadata"]["name"]
        try:
            res.delete(name=name, namespace=obj["metadata"].get("namespace"))
            done.append(f"{obj['kind']}/{name} deleted")
        except NotFoundError:
            pass
    return done


def exists(client: Any, obj: dict[str, Any]) -> bool:
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        _resource(_dynamic(client), obj).get(name=obj["metadata"]["name"],
                                                          namespace=obj["metadata"].get("namespace"))
    except NotFoundError:
        return False
    return True
