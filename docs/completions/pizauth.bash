# bash completion for pizauth(1).
#
# Install as $PREFIX/share/bash-completion/completions/pizauth (./install.sh does), or
# source it from ~/.bashrc.
#
# Account names come from `pizauth status` when a server is running (each line is
# "name: state"), otherwise from the `account "name"` lines of the config file: the one
# given with -c on the command line, else $XDG_CONFIG_HOME/pizauth.conf, else
# ~/.config/pizauth.conf.

# Prints the account names, one per line. $1...: the words of the command line.
_pizauth_accounts() {
    local out line config="" i
    if out=$(command pizauth status 2>/dev/null); then
        while IFS= read -r line; do
            [[ -n $line ]] && printf '%s\n' "${line%%: *}"
        done <<<"$out"
        return
    fi
    for ((i = 1; i <= $#; i++)); do
        case ${!i} in
        -c)
            i=$((i + 1))
            config=${!i-}
            ;;
        -c?*) config=${!i#-c} ;;
        esac
    done
    if [[ -z $config ]]; then
        if [[ $XDG_CONFIG_HOME == /* ]]; then
            config=$XDG_CONFIG_HOME/pizauth.conf
        else
            config=$HOME/.config/pizauth.conf
        fi
    fi
    [[ $config == "~/"* ]] && config=$HOME/${config#"~/"}
    [[ -r $config ]] || return
    sed -n 's/^[[:space:]]*account[[:space:]]*"\([^"]*\)".*/\1/p' -- "$config"
}

_pizauth() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="dump info refresh reload restore revoke server show shutdown status"
    COMPREPLY=()

    if ((COMP_CWORD == 1)); then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "-h --help" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return
    fi

    local command=${COMP_WORDS[1]} flags="" takes_account=0
    case $command in
    info) flags="-c -j" ;;
    server) flags="-c -d -v" ;;
    status) flags="-j" ;;
    refresh)
        flags="-u"
        takes_account=1
        ;;
    show)
        flags="-u -w"
        takes_account=1
        ;;
    revoke) takes_account=1 ;;
    dump | reload | restore | shutdown) ;;
    *) return ;;
    esac

    # The config file after -c; a number of seconds after -w.
    if [[ $prev == -c && " $flags " == *" -c "* ]]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
    fi
    [[ $prev == -w && " $flags " == *" -w "* ]] && return

    # Options, until `--`; the operands seen so far.
    local i word operands=0 options_done=0
    for ((i = 2; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if ((options_done)); then
            operands=$((operands + 1))
        elif [[ $word == -- ]]; then
            options_done=1
        elif [[ $word == -c || ($word == -w && " $flags " == *" -w "*) ]]; then
            # An option's value is no operand. -c is skipped whatever the command: its
            # value may name the config file that _pizauth_accounts reads.
            i=$((i + 1))
        elif [[ $word != -* ]]; then
            operands=$((operands + 1))
        fi
    done

    if [[ $cur == -* ]] && ((!options_done)); then
        mapfile -t COMPREPLY < <(compgen -W "$flags -h --help" -- "$cur")
        return
    fi
    if ((takes_account && operands == 0)); then
        local name
        while IFS= read -r name; do
            if [[ -n $name && $name == "$cur"* ]]; then
                COMPREPLY+=("$(printf '%q' "$name")")
            fi
        done < <(_pizauth_accounts "${COMP_WORDS[@]:1:COMP_CWORD-1}")
    fi
}

complete -F _pizauth pizauth
