complete --keep-order --exclusive --command nepho --arguments "(NEPHO_COMPLETE=fish nepho -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
