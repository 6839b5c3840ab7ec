# bash completion for orbcast. Generated from the CLI by `make completions` (python -m orbcast.completions): do not edit.
# Install: source it from ~/.bashrc, or copy it to ~/.local/share/bash-completion/completions/orbcast

_orbcast_subcommands() {
    case "$1" in
        "") echo "backfill config demo fetch query replay test-connection trace" ;;
        "config") echo "path set show" ;;
    esac
}

_orbcast_options() {
    case "$1" in
        "") echo "-h --help --profile -q --quiet -v --verbose --version" ;;
        "backfill") echo "--attr --batch-spans --concurrency --detail --dry-run --encoding --fetch-concurrency --force --from -h --help --management-key --gzip --no-gzip --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --privacy --profile -q --quiet --since --skip-existing --source --state-dir --strict --tempo-token --tempo-url --tempo-user --to -v --verbose --verify --with-content --write-otlp" ;;
        "config") echo "-h --help" ;;
        "config path") echo "-h --help" ;;
        "config set") echo "-h --help --profile" ;;
        "config show") echo "-h --help --management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile -q --quiet --state-dir --tempo-token --tempo-url --tempo-user -v --verbose" ;;
        "demo") echo "--attr --by -n --count -h --help --management-key --now --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user --out -o --output --profile -q --quiet --seed --state-dir --tempo-token --tempo-url --tempo-user -v --verbose" ;;
        "fetch") echo "--concurrency --detail --from -h --help --management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --privacy --profile -q --quiet --since --source --state-dir --strict --tempo-token --tempo-url --tempo-user --to -v --verbose --with-content" ;;
        "query") echo "--approx --by --fail-if --from -h --help --limit --management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile -q --quiet --raw --since --state-dir --tempo-token --tempo-url --tempo-user --to -v --verbose" ;;
        "replay") echo "--attr --batch-spans --concurrency --dry-run --encoding --fetch-concurrency --force --format --from -h --help --management-key --gzip --no-gzip --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --privacy --profile -q --quiet --since --skip-existing --state-dir --strict --tempo-token --tempo-url --tempo-user --to -v --verbose --verify --with-content --write-otlp" ;;
        "test-connection") echo "-h --help --management-key --only --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile -q --quiet --round-trip --round-trip-timeout --state-dir --tempo-token --tempo-url --tempo-user --timeout -v --verbose" ;;
        "trace") echo "-h --help --management-key --attributes --no-attributes --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile -q --quiet --state-dir --tempo-token --tempo-url --tempo-user -v --verbose" ;;
    esac
}

_orbcast_valued() {
    case "$1" in
        "") echo "--profile" ;;
        "backfill") echo "--attr --batch-spans --concurrency --detail --encoding --fetch-concurrency --from --management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile --since --source --state-dir --tempo-token --tempo-url --tempo-user --to --write-otlp" ;;
        "config set") echo "--profile" ;;
        "config show") echo "--management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile --state-dir --tempo-token --tempo-url --tempo-user" ;;
        "demo") echo "--attr --by -n --count --management-key --now --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user --out -o --output --profile --seed --state-dir --tempo-token --tempo-url --tempo-user" ;;
        "fetch") echo "--concurrency --detail --from --management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile --since --source --state-dir --tempo-token --tempo-url --tempo-user --to" ;;
        "query") echo "--by --fail-if --from --limit --management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile --since --state-dir --tempo-token --tempo-url --tempo-user --to" ;;
        "replay") echo "--attr --batch-spans --concurrency --encoding --fetch-concurrency --format --from --management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile --since --state-dir --tempo-token --tempo-url --tempo-user --to --write-otlp" ;;
        "test-connection") echo "--management-key --only --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile --round-trip-timeout --state-dir --tempo-token --tempo-url --tempo-user --timeout" ;;
        "trace") echo "--management-key --openrouter-key --openrouter-url --otlp-endpoint --otlp-header --otlp-token --otlp-user -o --output --profile --state-dir --tempo-token --tempo-url --tempo-user" ;;
    esac
}

_orbcast_values() {
    case "$1|$2" in
        "backfill|--detail") echo "full summary" ;;
        "backfill|--encoding") echo "json protobuf" ;;
        "backfill|-o") echo "table json" ;;
        "backfill|--output") echo "table json" ;;
        "backfill|--state-dir") echo "@files" ;;
        "backfill|--write-otlp") echo "@files" ;;
        "config show|-o") echo "table json" ;;
        "config show|--output") echo "table json" ;;
        "config show|--state-dir") echo "@files" ;;
        "demo|--out") echo "@files" ;;
        "demo|-o") echo "table json markdown" ;;
        "demo|--output") echo "table json markdown" ;;
        "demo|--state-dir") echo "@files" ;;
        "fetch|--detail") echo "full summary" ;;
        "fetch|-o") echo "@files" ;;
        "fetch|--output") echo "@files" ;;
        "fetch|--state-dir") echo "@files" ;;
        "query|-o") echo "table json jsonl csv markdown" ;;
        "query|--output") echo "table json jsonl csv markdown" ;;
        "query|--state-dir") echo "@files" ;;
        "replay|--encoding") echo "json protobuf" ;;
        "replay|--format") echo "csv jsonl ids otlp" ;;
        "replay|-o") echo "table json" ;;
        "replay|--output") echo "table json" ;;
        "replay|--state-dir") echo "@files" ;;
        "replay|--write-otlp") echo "@files" ;;
        "test-connection|-o") echo "table json" ;;
        "test-connection|--output") echo "table json" ;;
        "test-connection|--state-dir") echo "@files" ;;
        "trace|-o") echo "table json" ;;
        "trace|--output") echo "table json" ;;
        "trace|--state-dir") echo "@files" ;;
    esac
}

_orbcast_arguments() {
    case "$1" in
        "config set") echo "openrouter_key management_key openrouter_url otlp_endpoint otlp_user otlp_token tempo_url tempo_user tempo_token state_dir privacy" ;;
        "replay") echo "@files" ;;
    esac
}

_orbcast_reply() {
    if [[ "$1" == "@files" ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$2"))
    elif [[ -n "$1" ]]; then
        COMPREPLY=($(compgen -W "$1" -- "$2"))
    else
        COMPREPLY=()
    fi
}

_orbcast() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local path="" word i skip=0
    [[ "$cur" == "=" ]] && cur=""
    [[ "$prev" == "=" ]] && prev="${COMP_WORDS[COMP_CWORD-2]}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if ((skip)); then
            [[ "$word" == "=" ]] || skip=0
            continue
        fi
        case "$word" in
            -*) [[ " $(_orbcast_valued "$path") " == *" $word "* ]] && skip=1 ;;
            *) [[ " $(_orbcast_subcommands "$path") " == *" $word "* ]] && path="${path:+$path }$word" ;;
        esac
    done
    if [[ "$prev" == -* && " $(_orbcast_valued "$path") " == *" $prev "* ]]; then
        _orbcast_reply "$(_orbcast_values "$path" "$prev")" "$cur"
    elif [[ "$cur" == -* ]]; then
        _orbcast_reply "$(_orbcast_options "$path")" "$cur"
    elif [[ -n "$(_orbcast_subcommands "$path")" ]]; then
        _orbcast_reply "$(_orbcast_subcommands "$path")" "$cur"
    else
        _orbcast_reply "$(_orbcast_arguments "$path")" "$cur"
    fi
    return 0
}

complete -F _orbcast orbcast
