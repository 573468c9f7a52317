# fish completion for pizauth(1).
#
# Install as pizauth.fish in a directory of $fish_complete_path: ./install.sh puts it in
# $PREFIX/share/fish/vendor_completions.d, which fish reads for PREFIX=~/.local, and for
# /usr/local when $XDG_DATA_DIRS includes /usr/local/share (desktop sessions set it so).
#
# Account names come from `pizauth status` when a server is running (each line is
# "name: state"), otherwise from the `account "name"` lines of the config file: the one
# given with -c on the command line, else $XDG_CONFIG_HOME/pizauth.conf, else
# ~/.config/pizauth.conf.

function __pizauth_accounts
    set -l out (pizauth status 2>/dev/null)
    if test $status -eq 0
        for line in $out
            string replace -r -- ': .*' '' $line
        end
        return
    end
    set -l words (commandline -opc)
    set -l config
    set -l i 1
    while test $i -le (count $words)
        switch $words[$i]
            case -c
                set i (math $i + 1)
                test $i -le (count $words); and set config $words[$i]
            case '-c?*'
                set config (string sub -s 3 -- $words[$i])
        end
        set i (math $i + 1)
    end
    if test -z "$config"
        if string match -q -- '/*' "$XDG_CONFIG_HOME"
            set config $XDG_CONFIG_HOME/pizauth.conf
        else
            set config $HOME/.config/pizauth.conf
        end
    end
    set config (string replace -r -- '^~/' "$HOME/" $config)
    test -r "$config"; or return
    string replace -r -f -- '^\s*account\s*"([^"]*)".*' '$1' <$config
end

# Whether the command line so far has a command and no operand after it yet.
function __pizauth_needs_account
    set -l words (commandline -opc)
    set -e words[1..2]
    set -l options_done 0
    set -l skip 0
    for word in $words
        if test $skip -eq 1
            set skip 0
        else if test $options_done -eq 1
            return 1
        else if test "$word" = --
            set options_done 1
        else if contains -- "$word" -c -w
            set skip 1
        else if not string match -q -- '-*' $word
            return 1
        end
    end
    return 0
end

set -l commands dump info refresh reload restore revoke server show shutdown status

complete -c pizauth -f
complete -c pizauth -s h -l help -d 'Show the usage'

complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a dump -d 'Write the tokens to standard output'
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a info -d 'Show the version, paths and server details'
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a refresh -d "Refresh an account's token now"
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a reload -d 'Make the server read its config file again'
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a restore -d 'Give the server tokens from a dump on standard input'
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a revoke -d "Forget an account's tokens"
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a server -d 'Start the server'
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a show -d "Print an account's access token"
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a shutdown -d 'Stop the server'
complete -c pizauth -n "not __fish_seen_subcommand_from $commands" -a status -d 'Show the state of every account'

complete -c pizauth -n '__fish_seen_subcommand_from info' -s c -r -F -d 'Report this config file'
complete -c pizauth -n '__fish_seen_subcommand_from info' -s j -d 'Print JSON'
complete -c pizauth -n '__fish_seen_subcommand_from server' -s c -r -F -d 'Read this config file'
complete -c pizauth -n '__fish_seen_subcommand_from server' -s d -d 'Stay in the foreground, log to standard error'
complete -c pizauth -n '__fish_seen_subcommand_from server' -s v -d 'Log more (repeat for more)'
complete -c pizauth -n '__fish_seen_subcommand_from refresh show' -s u -d 'Leave the authorisation URL out of errors'
complete -c pizauth -n '__fish_seen_subcommand_from show' -s w -x -d 'Wait this many seconds for a token'
complete -c pizauth -n '__fish_seen_subcommand_from status' -s j -d 'Print JSON'
complete -c pizauth -n '__fish_seen_subcommand_from refresh revoke show; and __pizauth_needs_account' -a '(__pizauth_accounts)' -d Account
