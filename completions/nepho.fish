# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_nepho_global_optspecs
    string join \n o/output= no-input q/quiet v/verbose config= h/help V/version
end

function __fish_nepho_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_nepho_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_nepho_using_subcommand
    set -l cmd (__fish_nepho_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c nepho -n "__fish_nepho_needs_command" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_needs_command" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_needs_command" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_needs_command" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_needs_command" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nepho -n "__fish_nepho_needs_command" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "cloudlet" -d 'Find, download and manage cloudlets'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "scenario" -d 'View cloudlet deployment scenarios'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "formation" -d 'Create and manage running cloudlet instances'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "registry" -d 'Manage the cloudlet registry index'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "cluster" -d 'The on-prem KVM cluster'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "register" -d 'Set provider credentials and settings (stored 0600)'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "create" -d 'Shortcut for formation:create'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "up" -d 'Shortcut for formation:create'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "destroy" -d 'Shortcut for formation:destroy'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "rm" -d 'Shortcut for formation:destroy'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "list" -d 'Shortcut for formation:list'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "ls" -d 'Shortcut for formation:list'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "status" -d 'Shortcut for formation:list'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "stop" -d 'Shortcut for formation:stop'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "halt" -d 'Shortcut for formation:stop'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "ssh" -d 'Shortcut for formation:ssh'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "open" -d 'Shortcut for formation:open'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, elvish, powershell)'
complete -c nepho -n "__fish_nepho_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "search" -d 'Search the registry (name matches rank above tags, tags above summaries)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "describe" -d 'Show a cloudlet\'s details (installed, or from the registry)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "install" -d 'Install a cloudlet by registry name or git URL'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "list" -d 'List installed cloudlets'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "update" -d 'Fetch and fast-forward installed cloudlets (refuses to discard local changes)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "uninstall" -d 'Remove an installed cloudlet'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "create" -d 'Scaffold a new native cloudlet that validates and deploys as is'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "validate" -d 'Check every scenario and render every pattern'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and not __fish_seen_subcommand_from search describe install list update uninstall create validate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from search" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from search" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from search" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from search" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from search" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from search" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from search" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from describe" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from describe" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from describe" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from describe" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from describe" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from describe" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from describe" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -l ref -d 'Branch, tag or commit to check out' -r
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -l name -d 'Install a Nepho 1.x cloudlet under this name (default: the last part of its git URL without `.git`, as 1.x named it); for two cloudlets whose URLs end alike' -r
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -l force -d 'Replace an installed cloudlet of the same name'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from install" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from list" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from list" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -l all -d 'Update every installed cloudlet'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -l force -d 'Uninstall even if formations were made from it'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from uninstall" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -l path -d 'Directory to create (default: ./NAME without the owner)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -l no-git -d 'Do not `git init` the new cloudlet'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from validate" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from validate" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from validate" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from validate" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from validate" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from validate" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from validate" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "search" -d 'Search the registry (name matches rank above tags, tags above summaries)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "describe" -d 'Show a cloudlet\'s details (installed, or from the registry)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "install" -d 'Install a cloudlet by registry name or git URL'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "list" -d 'List installed cloudlets'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "update" -d 'Fetch and fast-forward installed cloudlets (refuses to discard local changes)'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "uninstall" -d 'Remove an installed cloudlet'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "create" -d 'Scaffold a new native cloudlet that validates and deploys as is'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "validate" -d 'Check every scenario and render every pattern'
complete -c nepho -n "__fish_nepho_using_subcommand cloudlet; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -f -a "list" -d 'List a cloudlet\'s scenarios'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -f -a "describe" -d 'Show a scenario and every merged parameter value with the layer and file it came from'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -f -a "render" -d 'Print the scenario\'s rendered pattern'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and not __fish_seen_subcommand_from list describe render help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from list" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from list" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -s f -l values -d 'Values file (YAML mapping); repeat to layer several, later files win' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -l set -d 'Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable' -r
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from describe" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -s f -l values -d 'Values file (YAML mapping); repeat to layer several, later files win' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -l set -d 'Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable' -r
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -l name -d 'Formation name the pattern sees as `formation.name`' -r
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -l reveal-secrets -d 'Render secret parameters with their real values instead of ********'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from render" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from help" -f -a "list" -d 'List a cloudlet\'s scenarios'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from help" -f -a "describe" -d 'Show a scenario and every merged parameter value with the layer and file it came from'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from help" -f -a "render" -d 'Print the scenario\'s rendered pattern'
complete -c nepho -n "__fish_nepho_using_subcommand scenario; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "create" -d 'Create a formation from CLOUDLET[/SCENARIO] (no scenario means `default`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "up" -d 'Create a formation from CLOUDLET[/SCENARIO] (no scenario means `default`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "list" -d 'List formations (from the providers, plus local records of builds in flight)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "ls" -d 'List formations (from the providers, plus local records of builds in flight)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "status" -d 'List formations (from the providers, plus local records of builds in flight)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "describe" -d 'Show a formation: status, resources, outputs and recent events'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "watch" -d 'Re-attach to a formation\'s build (or replay the last one)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "events" -d 'Print a formation\'s event journal (`-o json`: the versioned NDJSON stream)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "update" -d 'Re-render a formation from its cloudlet and apply the changes'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "destroy" -d 'Destroy a formation and everything nepho built for it'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "rm" -d 'Destroy a formation and everything nepho built for it'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "cancel" -d 'Stop a running build (it can be resumed with `create --resume`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "ssh" -d 'Open an ssh session to a formation (or run CMD there)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "stop" -d 'Shut machines down cleanly (ACPI, then forced after a timeout) — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "halt" -d 'Shut machines down cleanly (ACPI, then forced after a timeout) — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "start" -d 'Start stopped machines — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "reset" -d 'Reset (hard reboot) machines — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "attach-iso" -d 'Put an ISO image in a machine\'s spare CD-ROM drive (live when running) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "detach-iso" -d 'Eject the ISO from a machine\'s spare CD-ROM drive — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "add-drive" -d 'Add an empty data drive (qcow2 volume or iSCSI LUN) to a machine, live when running — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "remove-drive" -d 'Detach a data drive (`diskN` as describe lists it) and delete its volume or LUN — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "resize-drive" -d 'Grow a drive of a shut-off machine (qcow2 volume or iSCSI LUN) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "vnc" -d 'Print a running machine\'s VNC address (remote hosts: an ssh forward, until Ctrl-C) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "attach-nic" -d 'Plug a machine into one more network (live when running; pool networks: fixed address + clean-traffic) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "detach-nic" -d 'Unplug a machine\'s NIC (`netN` or its network) and release its address — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "open" -d 'Print (and open in a browser, when there is one) the formation\'s URL'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and not __fish_seen_subcommand_from create up list ls status describe watch events update destroy rm cancel ssh stop halt start reset attach-iso detach-iso add-drive remove-drive resize-drive vnc attach-nic detach-nic open help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -s n -l name -d 'Formation name' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -s f -l values -d 'Values file (YAML mapping); repeat to layer several, later files win' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l set -d 'Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l dry-run -d 'Show what would be created (the provider\'s change set) and change nothing'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l resume -d 'Continue an interrupted create from its journal'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l no-rollback -d 'Keep what a failed create built instead of rolling it back'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -s n -l name -d 'Formation name' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -s f -l values -d 'Values file (YAML mapping); repeat to layer several, later files win' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l set -d 'Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l dry-run -d 'Show what would be created (the provider\'s change set) and change nothing'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l resume -d 'Continue an interrupted create from its journal'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l no-rollback -d 'Keep what a failed create built instead of rolling it back'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from list" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from list" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ls" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ls" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ls" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ls" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from status" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from status" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from status" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from describe" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from describe" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from describe" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from describe" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from describe" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from describe" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from describe" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from watch" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from watch" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from watch" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from watch" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from watch" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from watch" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from watch" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -l since -d 'Only events with this sequence number or later' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -l follow -d 'Keep following until the running build ends'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from events" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -s f -l values -d 'Values file (YAML mapping); repeat to layer several, later files win' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -l set -d 'Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -s y -l yes -l auto-approve -d 'Destroy without asking (needed when there is no terminal to ask on)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from destroy" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -s y -l yes -l auto-approve -d 'Destroy without asking (needed when there is no terminal to ask on)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from rm" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from cancel" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from cancel" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from cancel" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from cancel" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from cancel" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from cancel" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from cancel" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -l print -d 'Print the ssh command line instead of running it'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from ssh" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from stop" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from stop" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from stop" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from stop" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from stop" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from stop" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from halt" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from halt" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from halt" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from halt" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from halt" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from halt" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from halt" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from start" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from start" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from start" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from start" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from start" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from start" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from reset" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from reset" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from reset" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from reset" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from reset" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from reset" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -s m -l machine -d 'Machine (default: the primary one)' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-iso" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -s m -l machine -d 'Machine (default: the primary one)' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-iso" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -l size-gb -d 'Size in GiB' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -l storage -d 'Where the drive lives: a qcow2 volume on the machine\'s host, or a LUN on the cluster\'s iSCSI target' -r -f -a "qcow2\t''
iscsi\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -s m -l machine -d 'Machine (default: the primary one)' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from add-drive" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -s m -l machine -d 'Machine (default: the primary one)' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from remove-drive" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -l size-gb -d 'New size in GiB (only growing is supported)' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from resize-drive" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -l local-port -d 'Local port of the ssh forward for a remote host (default: any free port)' -r
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from vnc" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-nic" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-nic" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-nic" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-nic" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-nic" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-nic" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from attach-nic" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-nic" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-nic" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-nic" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-nic" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-nic" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-nic" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from detach-nic" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -l print -d 'Only print the URL'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from open" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a formation from CLOUDLET[/SCENARIO] (no scenario means `default`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "list" -d 'List formations (from the providers, plus local records of builds in flight)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "describe" -d 'Show a formation: status, resources, outputs and recent events'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "watch" -d 'Re-attach to a formation\'s build (or replay the last one)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "events" -d 'Print a formation\'s event journal (`-o json`: the versioned NDJSON stream)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "update" -d 'Re-render a formation from its cloudlet and apply the changes'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "destroy" -d 'Destroy a formation and everything nepho built for it'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "cancel" -d 'Stop a running build (it can be resumed with `create --resume`)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "ssh" -d 'Open an ssh session to a formation (or run CMD there)'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Shut machines down cleanly (ACPI, then forced after a timeout) — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start stopped machines — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "reset" -d 'Reset (hard reboot) machines — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "attach-iso" -d 'Put an ISO image in a machine\'s spare CD-ROM drive (live when running) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "detach-iso" -d 'Eject the ISO from a machine\'s spare CD-ROM drive — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "add-drive" -d 'Add an empty data drive (qcow2 volume or iSCSI LUN) to a machine, live when running — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "remove-drive" -d 'Detach a data drive (`diskN` as describe lists it) and delete its volume or LUN — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "resize-drive" -d 'Grow a drive of a shut-off machine (qcow2 volume or iSCSI LUN) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "vnc" -d 'Print a running machine\'s VNC address (remote hosts: an ssh forward, until Ctrl-C) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "attach-nic" -d 'Plug a machine into one more network (live when running; pool networks: fixed address + clean-traffic) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "detach-nic" -d 'Unplug a machine\'s NIC (`netN` or its network) and release its address — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "open" -d 'Print (and open in a browser, when there is one) the formation\'s URL'
complete -c nepho -n "__fish_nepho_using_subcommand formation; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -f -a "update" -d 'Fetch the registry index now (conditional request; the cache is used when unchanged)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -f -a "build" -d 'Build a registry (index.json pinned to commits, and a static web site) from cloudlets'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -f -a "serve" -d 'Serve a built registry over HTTP (ETag, gzip) until interrupted'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and not __fish_seen_subcommand_from update build serve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from update" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from update" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from update" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -l manifest -d 'Also publish the entries of this JSON file (`{"cloudlets": [...]}`: index entries, each with an optional Markdown "readme")' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -l out -d 'Directory to write (created; a previous build there is replaced)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -l sign -d 'Sign index.json with this private SSH key (writes index.json.sig)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from build" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -l listen -d 'Address to listen on (port 0 picks a free one)' -r
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -l allow-remote -d 'Allow listening on an address other than loopback'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from serve" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from help" -f -a "update" -d 'Fetch the registry index now (conditional request; the cache is used when unchanged)'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from help" -f -a "build" -d 'Build a registry (index.json pinned to commits, and a static web site) from cloudlets'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from help" -f -a "serve" -d 'Serve a built registry over HTTP (ETag, gzip) until interrupted'
complete -c nepho -n "__fish_nepho_using_subcommand registry; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "status" -d 'Hosts, capacity, usage and the machines on each (read from the hosts)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "failover" -d 'Restart a dead host\'s machines (disks all on iSCSI) on other hosts with room'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "watch" -d 'Watch the hosts and fail over every host that stays unreachable (runs until stopped)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "migrate" -d 'Move a machine to another host, offline: clean shutdown, local disks copied, started again there if it was running'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "rebalance" -d 'Even out memory use across the hosts by migrating machines (offline, one at a time)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "evacuate" -d 'Move every machine off a live host (maintenance), offline, one at a time'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "usage" -d 'What each machine uses: per disk / iSCSI export (space, I/O, sessions) and per address (traffic)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and not __fish_seen_subcommand_from status failover watch migrate rebalance evacuate usage help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from status" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from status" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from status" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from failover" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from failover" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from failover" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from failover" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from failover" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from failover" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from failover" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l interval -d 'Seconds between two checks of every host' -r
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l grace -d 'Seconds a host must stay unreachable before its machines are moved' -r
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l timeout -d 'Stop after this many seconds (default: run until interrupted)' -r
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l lock-fd -d 'The background watcher itself: adopts the lock passed by `--detach`' -r
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l detach -d 'Run in the background, in a session of its own (it survives the terminal); one per nepho home. Reports go to `<state>/cluster/watch.log` (JSON)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l status -d 'Whether a background watcher runs, and since when (exit 3 when none)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l stop -d 'Stop the background watcher'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from watch" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -l to -d 'The destination host (default: the allocator picks one of the other hosts)' -r
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from migrate" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -l max-moves -d 'Make at most this many moves' -r
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -l dry-run -d 'Print the moves without making them'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from rebalance" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -l dry-run -d 'Print the moves without making them'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -l formation -d 'Only this formation\'s machines' -r
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from usage" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "status" -d 'Hosts, capacity, usage and the machines on each (read from the hosts)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "failover" -d 'Restart a dead host\'s machines (disks all on iSCSI) on other hosts with room'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "watch" -d 'Watch the hosts and fail over every host that stays unreachable (runs until stopped)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "migrate" -d 'Move a machine to another host, offline: clean shutdown, local disks copied, started again there if it was running'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "rebalance" -d 'Even out memory use across the hosts by migrating machines (offline, one at a time)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "evacuate" -d 'Move every machine off a live host (maintenance), offline, one at a time'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "usage" -d 'What each machine uses: per disk / iSCSI export (space, I/O, sessions) and per address (traffic)'
complete -c nepho -n "__fish_nepho_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand register" -l region -d 'AWS region (e.g. us-east-1)' -r
complete -c nepho -n "__fish_nepho_using_subcommand register" -l profile -d 'Use this AWS profile from ~/.aws/config instead of keys' -r
complete -c nepho -n "__fish_nepho_using_subcommand register" -l access-key-id -d 'AWS access key id (the secret key is read from AWS_SECRET_ACCESS_KEY or prompted)' -r
complete -c nepho -n "__fish_nepho_using_subcommand register" -l endpoint-url -d 'AWS API endpoint (for AWS-compatible services and local mocks)' -r
complete -c nepho -n "__fish_nepho_using_subcommand register" -l template-bucket -d 'S3 bucket for large templates and Nepho 1.x payloads' -r
complete -c nepho -n "__fish_nepho_using_subcommand register" -l vagrant-home -d 'Vagrant: VAGRANT_HOME for nepho\'s vagrant calls (boxes, plugins); default: the environment\'s' -r
complete -c nepho -n "__fish_nepho_using_subcommand register" -l default-provider -d 'Vagrant: provider passed as --provider when the scenario names none (default libvirt)' -r
complete -c nepho -n "__fish_nepho_using_subcommand register" -l libvirt-driver -d 'Vagrant: NEPHO_LIBVIRT_DRIVER for Vagrantfiles: kvm, qemu, or auto (probe for KVM)' -r -f -a "auto\t''
kvm\t''
qemu\t''"
complete -c nepho -n "__fish_nepho_using_subcommand register" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand register" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand register" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand register" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand register" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand register" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand register" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand create" -s n -l name -d 'Formation name' -r
complete -c nepho -n "__fish_nepho_using_subcommand create" -s f -l values -d 'Values file (YAML mapping); repeat to layer several, later files win' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand create" -l set -d 'Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable' -r
complete -c nepho -n "__fish_nepho_using_subcommand create" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand create" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand create" -l dry-run -d 'Show what would be created (the provider\'s change set) and change nothing'
complete -c nepho -n "__fish_nepho_using_subcommand create" -l resume -d 'Continue an interrupted create from its journal'
complete -c nepho -n "__fish_nepho_using_subcommand create" -l no-rollback -d 'Keep what a failed create built instead of rolling it back'
complete -c nepho -n "__fish_nepho_using_subcommand create" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand create" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand create" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand create" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand create" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand create" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand create" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand up" -s n -l name -d 'Formation name' -r
complete -c nepho -n "__fish_nepho_using_subcommand up" -s f -l values -d 'Values file (YAML mapping); repeat to layer several, later files win' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand up" -l set -d 'Set one value: KEY=VALUE (dotted keys for nested maps; typed like YAML); repeatable' -r
complete -c nepho -n "__fish_nepho_using_subcommand up" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand up" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand up" -l dry-run -d 'Show what would be created (the provider\'s change set) and change nothing'
complete -c nepho -n "__fish_nepho_using_subcommand up" -l resume -d 'Continue an interrupted create from its journal'
complete -c nepho -n "__fish_nepho_using_subcommand up" -l no-rollback -d 'Keep what a failed create built instead of rolling it back'
complete -c nepho -n "__fish_nepho_using_subcommand up" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand up" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand up" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand up" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand up" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand up" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand up" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -s y -l yes -l auto-approve -d 'Destroy without asking (needed when there is no terminal to ask on)'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand destroy" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand rm" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand rm" -s y -l yes -l auto-approve -d 'Destroy without asking (needed when there is no terminal to ask on)'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -l foreground -d 'Run the build in this process instead of a detached nanny'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -l detach -d 'Start the build and return at once (watch it with `formation:watch`)'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand rm" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand list" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand list" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand list" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand list" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand list" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand list" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand list" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand ls" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand ls" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand ls" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand ls" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand ls" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand ls" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand ls" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand status" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand status" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand status" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand status" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand status" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand status" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand status" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand stop" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand stop" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand stop" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand stop" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand stop" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand stop" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand stop" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand halt" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand halt" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand halt" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand halt" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand halt" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand halt" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand halt" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -l print -d 'Print the ssh command line instead of running it'
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand ssh" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand open" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand open" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand open" -l print -d 'Only print the URL'
complete -c nepho -n "__fish_nepho_using_subcommand open" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand open" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand open" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand open" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand open" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand completions" -s o -l output -d 'Output format for results on stdout (progress and warnings always go to stderr)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c nepho -n "__fish_nepho_using_subcommand completions" -l config -d 'Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`)' -r -F
complete -c nepho -n "__fish_nepho_using_subcommand completions" -l no-input -d 'Never prompt; a missing value is an error naming the flag that supplies it (automatic when stdin is not a terminal)'
complete -c nepho -n "__fish_nepho_using_subcommand completions" -s q -l quiet -d 'Print only results and errors'
complete -c nepho -n "__fish_nepho_using_subcommand completions" -s v -l verbose -d 'Print more about what nepho does (repeat for more)'
complete -c nepho -n "__fish_nepho_using_subcommand completions" -s h -l help -d 'Print help'
complete -c nepho -n "__fish_nepho_using_subcommand completions" -s V -l version -d 'Print version'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "cloudlet" -d 'Find, download and manage cloudlets'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "scenario" -d 'View cloudlet deployment scenarios'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "formation" -d 'Create and manage running cloudlet instances'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "registry" -d 'Manage the cloudlet registry index'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "cluster" -d 'The on-prem KVM cluster'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "register" -d 'Set provider credentials and settings (stored 0600)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "create" -d 'Shortcut for formation:create'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "destroy" -d 'Shortcut for formation:destroy'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "list" -d 'Shortcut for formation:list'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "stop" -d 'Shortcut for formation:stop'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "ssh" -d 'Shortcut for formation:ssh'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "open" -d 'Shortcut for formation:open'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, elvish, powershell)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and not __fish_seen_subcommand_from cloudlet scenario formation registry cluster register create destroy list stop ssh open completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "search" -d 'Search the registry (name matches rank above tags, tags above summaries)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "describe" -d 'Show a cloudlet\'s details (installed, or from the registry)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "install" -d 'Install a cloudlet by registry name or git URL'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "list" -d 'List installed cloudlets'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "update" -d 'Fetch and fast-forward installed cloudlets (refuses to discard local changes)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "uninstall" -d 'Remove an installed cloudlet'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "create" -d 'Scaffold a new native cloudlet that validates and deploys as is'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cloudlet" -f -a "validate" -d 'Check every scenario and render every pattern'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from scenario" -f -a "list" -d 'List a cloudlet\'s scenarios'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from scenario" -f -a "describe" -d 'Show a scenario and every merged parameter value with the layer and file it came from'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from scenario" -f -a "render" -d 'Print the scenario\'s rendered pattern'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "create" -d 'Create a formation from CLOUDLET[/SCENARIO] (no scenario means `default`)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "list" -d 'List formations (from the providers, plus local records of builds in flight)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "describe" -d 'Show a formation: status, resources, outputs and recent events'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "watch" -d 'Re-attach to a formation\'s build (or replay the last one)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "events" -d 'Print a formation\'s event journal (`-o json`: the versioned NDJSON stream)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "update" -d 'Re-render a formation from its cloudlet and apply the changes'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "destroy" -d 'Destroy a formation and everything nepho built for it'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "cancel" -d 'Stop a running build (it can be resumed with `create --resume`)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "ssh" -d 'Open an ssh session to a formation (or run CMD there)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "stop" -d 'Shut machines down cleanly (ACPI, then forced after a timeout) — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "start" -d 'Start stopped machines — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "reset" -d 'Reset (hard reboot) machines — KVM, Vagrant'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "attach-iso" -d 'Put an ISO image in a machine\'s spare CD-ROM drive (live when running) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "detach-iso" -d 'Eject the ISO from a machine\'s spare CD-ROM drive — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "add-drive" -d 'Add an empty data drive (qcow2 volume or iSCSI LUN) to a machine, live when running — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "remove-drive" -d 'Detach a data drive (`diskN` as describe lists it) and delete its volume or LUN — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "resize-drive" -d 'Grow a drive of a shut-off machine (qcow2 volume or iSCSI LUN) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "vnc" -d 'Print a running machine\'s VNC address (remote hosts: an ssh forward, until Ctrl-C) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "attach-nic" -d 'Plug a machine into one more network (live when running; pool networks: fixed address + clean-traffic) — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "detach-nic" -d 'Unplug a machine\'s NIC (`netN` or its network) and release its address — KVM'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from formation" -f -a "open" -d 'Print (and open in a browser, when there is one) the formation\'s URL'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from registry" -f -a "update" -d 'Fetch the registry index now (conditional request; the cache is used when unchanged)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from registry" -f -a "build" -d 'Build a registry (index.json pinned to commits, and a static web site) from cloudlets'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from registry" -f -a "serve" -d 'Serve a built registry over HTTP (ETag, gzip) until interrupted'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "status" -d 'Hosts, capacity, usage and the machines on each (read from the hosts)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "failover" -d 'Restart a dead host\'s machines (disks all on iSCSI) on other hosts with room'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "watch" -d 'Watch the hosts and fail over every host that stays unreachable (runs until stopped)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "migrate" -d 'Move a machine to another host, offline: clean shutdown, local disks copied, started again there if it was running'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "rebalance" -d 'Even out memory use across the hosts by migrating machines (offline, one at a time)'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "evacuate" -d 'Move every machine off a live host (maintenance), offline, one at a time'
complete -c nepho -n "__fish_nepho_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "usage" -d 'What each machine uses: per disk / iSCSI export (space, I/O, sessions) and per address (traffic)'
