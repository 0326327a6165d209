#!/usr/bin/env python3
"""moto_server with two fixes that make it behave like AWS for nepho's tests.

moto's ExecuteChangeSet applies the change set's resources but leaves the stack's Outputs
empty (AWS evaluates them). nepho creates and updates stacks through change sets and reads
ssh/URL endpoints from Outputs, so the outputs are rebuilt after a change set executes.
moto's DeleteChangeSet of a change set it does not have fails with a 500 and no body; AWS says
ChangeSetNotFound, which nepho's cleanup treats as done.
Usage: same arguments as moto_server (e.g. -H 127.0.0.1 -p 5000).
"""
import sys

from moto.cloudformation import models

_execute = models.CloudFormationBackend.execute_change_set


def execute_change_set(self, change_set_name, stack_name=None):
    _execute(self, change_set_name, stack_name)
    for change_set in list(self.change_sets.values()):
        if change_set_name in (change_set.change_set_id, change_set.change_set_name):
            stack = self.stacks.get(change_set.stack_id)
            if stack is not None:
                stack._parse_template()
                stack.output_map = stack._create_output_map()


models.CloudFormationBackend.execute_change_set = execute_change_set

_delete_change_set = models.CloudFormationBackend.delete_change_set


def delete_change_set(self, change_set_name):
    # moto fails with an UnboundLocalError (a 500 with an empty body) when the change set is
    # not there; AWS answers ChangeSetNotFound. Answer as AWS does.
    known = change_set_name in self.change_sets or any(
        cs.change_set_name == change_set_name for cs in self.change_sets.values()
    )
    if not known:
        from moto.cloudformation.exceptions import CloudFormationError

        class ChangeSetNotFound(CloudFormationError):
            code = "ChangeSetNotFound"

        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")
    return _delete_change_set(self, change_set_name)


models.CloudFormationBackend.delete_change_set = delete_change_set

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
