#!/usr/bin/env python3
"""Reference renderer: how Nepho 1.x (Python, PyYAML, Jinja2) rendered a blueprint.

Usage: jinja2_render.py CLOUDLET_DIR BLUEPRINT  -> the rendered template on stdout.
Merge order: provider defaults -> cloudlet.yaml parameters -> blueprint parameters.
"""
import os
import sys

import jinja2
import yaml

PROVIDER_FILES = {"aws": "cf.json", "vagrant": "Vagrantfile"}
PROVIDER_DEFAULTS = {"vagrant": {"VagrantBackend": "libvirt"}, "aws": {}}
SECRET_WORDS = ("password", "passwd", "secret", "token", "privatekey")


def main():
    root, blueprint = os.path.realpath(sys.argv[1]), sys.argv[2]
    with open(os.path.join(root, "cloudlet.yaml")) as f:
        cloudlet = yaml.safe_load(f)
    with open(os.path.join(root, "blueprints", blueprint + ".yaml")) as f:
        bp = yaml.safe_load(f)
    provider = bp["provider"]
    pattern = bp.get("pattern") or blueprint
    params = dict(PROVIDER_DEFAULTS[provider])
    params.update(cloudlet.get("parameters") or {})
    params.update(bp.get("parameters") or {})
    resources = os.path.join(root, "resources")
    search = [os.path.join(resources, pattern), os.path.join(resources, "common", provider),
              os.path.join(resources, "common"), resources, root]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(search))
    env.globals["env_vars"] = lambda: {k: v for k, v in params.items()
                                       if not any(w in k.lower() for w in SECRET_WORDS)}
    context = {
        "parameters": params,
        "cloudlet": {"name": cloudlet["name"], "format": cloudlet.get("format", 1),
                     "path": root, "version": cloudlet.get("version")},
        "blueprint": {"name": blueprint, "provider": provider},
    }
    sys.stdout.write(env.get_template(PROVIDER_FILES[provider]).render(**context))


if __name__ == "__main__":
    main()
