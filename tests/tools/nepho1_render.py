#!/usr/bin/env python3
"""Reference renderer: a blueprint of a Nepho 1.x cloudlet, rendered as Nepho 1.2.3 did.

Usage:
    nepho1_render.py CLOUDLET_DIR BLUEPRINT [--name NAME] [--stored FILE.yaml]
                     [--set K=V ...] [--format]

Prints the rendered template on stdout, byte for byte (no newline added).
Exit codes: 0 ok; 2 usage / cloudlet or blueprint unreadable; 3 Jinja2 error
(`ERROR: <type>: <message>` on stderr); 4 context error that crashed 1.2.3
(KeyError on a missing cloudlet.yaml key, unknown provider, bad -p item);
5 `--format` given and the rendered CloudFormation template is not JSON.

Sources (github huit/nepho, Python 2, Jinja2 2.7.x / PyYAML 3.1x era; see
docs/nepho1-compat.md for the full rules):
  * nepho/core/scenario.py   @ a2ed4f87 -- context and template loader
  * nepho/core/cloudlet.py   @ 9a05635c -- cloudlet.definition (name/url/path)
  * nepho/core/blueprint.py  @ 562ed0fb -- blueprint.definition (name, provider)
  * nepho/core/parameter.py  @ 9a05635c -- stored params (YAML file)
  * nepho/cli/stack.py       @ a04792c9 -- `-p K=V` user params (strings)
  * nepho/providers/aws_provider.py @ 5728634e -- PROVIDER_ID aws, cf.json,
    default params, format_template (json re-dump, indent=2)
  * nepho/providers/vagrant_provider.py (find_string id 8331856048, the 1.2.x
    "working directory" version) -- PROVIDER_ID vagrant, Vagrantfile,
    params {VagrantBackend: virtualbox, BoxName: None}; no format_template
  * nepho/core/provider.py   @ a42baabd -- base format_template = identity

Deliberate deviations from a literal 1.2.3 run:
  * yaml.safe_load everywhere (1.2.3 used yaml.load for blueprints and the
    params file; identical for plain data, differs only for !!python tags).
  * env_vars() is provided as a Jinja2 global.  It is NOT in any stored
    1.2.x source (1.2.3 would fail with "'env_vars' is undefined"); public
    cloudlets (huit-nepho-cloudlets/nepho-example vagrant-single-host) call
    it, so a later nepho injected it.  Reconstructed here as: the final
    context parameters, in merge order, minus AWSAccessKeyID and
    AWSSecretAccessKey (values unconverted).
  * Python 3 + Jinja2 3.1: dicts iterate in insertion order (Python 2 used
    hash order), str(float) is repr (Python 2 printed 12 significant
    digits).  The corpus avoids depending on either.
  * Output is the raw render.  AWS format_template (json.loads with
    OrderedDict + json.dumps(indent=2, separators=(',', ': '))) only changes
    whitespace / key duplicates / non-ASCII escaping; it is applied only with
    --format.  Its one observable effect -- a template that is not JSON makes
    1.2.3 print "Error loading JSON template file." and exit 1 -- is what
    --format's exit 5 reproduces.
"""
import argparse
import collections
import json
import os
import sys

import jinja2
import yaml


class Provider(object):
    PROVIDER_ID = None
    TEMPLATE_FILENAME = None

    def __init__(self):
        self.params = None

    def format_template(self, template):  # nepho/core/provider.py
        return template


class AWSProvider(Provider):
    PROVIDER_ID = "aws"
    TEMPLATE_FILENAME = "cf.json"

    def __init__(self):
        # aws_provider.py: these four, all None, always in the context.
        self.params = collections.OrderedDict(
            [("AWSAccessKeyID", None), ("AWSSecretAccessKey", None),
             ("AWSRegion", None), ("KeyName", None)])

    def format_template(self, raw_template):
        cf_dict = json.loads(raw_template, object_pairs_hook=collections.OrderedDict)
        return json.dumps(cf_dict, indent=2, separators=(",", ": "))


class VagrantProvider(Provider):
    PROVIDER_ID = "vagrant"
    TEMPLATE_FILENAME = "Vagrantfile"

    def __init__(self):
        # 1.2.3 defaulted VagrantBackend to "virtualbox"; nepho runs Vagrant with vagrant-libvirt
        # and defaults it to "libvirt" (a documented difference), so the reference does too.
        self.params = collections.OrderedDict(
            [("VagrantBackend", "libvirt"), ("BoxName", None)])


PROVIDERS = {"aws": AWSProvider, "vagrant": VagrantProvider}
SECRET_KEYS = ("AWSAccessKeyID", "AWSSecretAccessKey")


def die(code, kind, msg):
    sys.stderr.write("ERROR: %s: %s\n" % (kind, msg))
    sys.exit(code)


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def merge_items(target, source, only_existing=False):
    """scenario.py: `for (k, v) in X.items()` inside a bare try/except: pass.
    A non-mapping (None, list, str) raises before any key is copied."""
    try:
        items = list(source.items())
    except Exception:
        return
    for k, v in items:
        if only_existing and k not in target:
            continue
        target[k] = v


def build_context(cloudlet_dir, blueprint_name, name, stored_file, sets):
    path = os.path.abspath(cloudlet_dir).rstrip(os.sep) or os.sep
    # cloudlet.py: definition = yaml.safe_load(cloudlet.yaml); then name, url,
    # path are overwritten.  name is the cloudlet name given on the command
    # line, which CloudletManager.find matched against the install directory's
    # basename -- cloudlet.yaml's own `name:` is never used.
    try:
        cdef = load_yaml(os.path.join(path, "cloudlet.yaml"))
    except Exception as e:
        die(2, "CloudletError", "Error loading cloudlet YAML file! (%s)" % e)
    if not isinstance(cdef, dict):
        die(4, "TypeError", "cloudlet.yaml is not a mapping")
    cdef["name"] = name
    cdef["url"] = None
    cdef["path"] = path

    # blueprint.py: yaml.load(blueprints/<name>.yaml); name = file stem
    # (overwrites any `name:`); `provider` required; `pattern:` ignored.
    bfile = os.path.join(path, "blueprints", blueprint_name + ".yaml")
    if not os.path.isfile(bfile):
        die(2, "BlueprintError", "Cannot find blueprint %s in cloudlet %s."
            % (blueprint_name, name))
    try:
        bdef = load_yaml(bfile)
    except Exception as e:
        die(2, "BlueprintError", "Error loading blueprint YAML file at %s! (%s)" % (bfile, e))
    if not isinstance(bdef, dict):
        die(4, "TypeError", "blueprint is not a mapping")
    bdef["name"] = blueprint_name
    if "provider" not in bdef:
        die(2, "BlueprintError", "Blueprint is missing required field provider.")
    if bdef["provider"] not in PROVIDERS:
        # provider_factory.py returns None -> AttributeError on .params
        die(4, "AttributeError", "'NoneType' object has no attribute 'params'")
    provider = PROVIDERS[bdef["provider"]]()

    # parameter.py: stored params = yaml.load(params_file); any failure -> {}.
    stored = {}
    if stored_file:
        try:
            stored = load_yaml(stored_file)
        except Exception:
            stored = {}

    # stack.py _parse_user_params: (k, v) = item.split("=") -> strings.
    user = collections.OrderedDict()
    for item in sets:
        parts = item.split("=")
        if len(parts) != 2:
            die(4, "ValueError", "bad -p item %r (1.2.3 unpacked item.split('=') into 2)" % item)
        user[parts[0]] = parts[1]

    # scenario.py context: Provider -> Cloudlet -> Blueprint, then Stored and
    # User override only keys that already exist.
    params = collections.OrderedDict()
    if provider.params is not None:
        merge_items(params, provider.params)
    if "parameters" in cdef:
        merge_items(params, cdef["parameters"])
    if "parameters" in bdef:
        merge_items(params, bdef["parameters"])
    if stored is not None:
        merge_items(params, stored, only_existing=True)
    merge_items(params, user, only_existing=True)

    try:
        context = {
            "parameters": params,
            "cloudlet": {"name": cdef["name"], "format": cdef["format"],
                         "path": cdef["path"], "version": cdef["version"]},
            "blueprint": {"name": bdef["name"], "provider": bdef["provider"]},
            "scripts": None,  # "Backwards compatibility"
        }
    except KeyError as e:
        die(4, "KeyError", str(e))
    return path, provider, context


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cloudlet_dir")
    ap.add_argument("blueprint")
    ap.add_argument("--name", help="cloudlet name (default: basename of CLOUDLET_DIR)")
    ap.add_argument("--stored", help="YAML file of stored params (nepho parameter set)")
    ap.add_argument("--set", action="append", default=[], metavar="K=V",
                    help="command-line param (nepho stack ... -p K=V); a string")
    ap.add_argument("--format", action="store_true",
                    help="apply the provider's format_template (aws: JSON re-dump)")
    a = ap.parse_args()

    name = a.name or os.path.basename(os.path.abspath(a.cloudlet_dir).rstrip(os.sep))
    path, provider, context = build_context(a.cloudlet_dir, a.blueprint, name, a.stored, a.set)

    # scenario.py template: search path is common-for-provider FIRST, then the
    # blueprint's own directory; Environment with every option at its default.
    template_dirs = [os.path.join(path, "resources", "common", provider.PROVIDER_ID),
                     os.path.join(path, "resources", context["blueprint"]["name"])]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template_dirs))

    def env_vars():  # reconstructed, see module docstring
        return collections.OrderedDict(
            (k, v) for k, v in context["parameters"].items() if k not in SECRET_KEYS)
    env.globals["env_vars"] = env_vars

    try:
        out = env.get_template(provider.TEMPLATE_FILENAME).render(context)
    except jinja2.TemplateError as e:
        die(3, type(e).__name__, e.message if getattr(e, "message", None) else str(e))
    except Exception as e:  # e.g. TypeError from Python %-formatting in a template
        die(3, type(e).__name__, str(e))

    if a.format:
        try:
            out = provider.format_template(out)
        except ValueError as e:
            die(5, "ValueError", "Error loading JSON template file. %s" % e)
    sys.stdout.write(out)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
