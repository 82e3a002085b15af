#!/usr/bin/env python3
"""Extract llama.cpp's command-line option table from a source tree into data/llama-builds/b<BUILD>.toml.

    python3 testbed/llama-options.py TREE --build N --commit HASH --source "SDIST" [--out DIR]

TREE is a llama.cpp source tree (the folder holding common/arg.cpp). Reads:
  common/arg.cpp   common_params_parser_init: every add_opt(common_arg(...)) with its names, negated
                   names, value hints, handler kind, set_examples / set_excludes / set_env, the
                   enclosing `if (ex == ...)` condition, and from the handler body the accepted values
                   (string compares, is_truthy / is_falsey / is_autoy, kv_cache_type_from_str) and the
                   integer checks that throw (`if (value < 0) throw`);
                   common_params_parse_ex: handler_int values go through std::stoi (i32);
                   whether `--long_name` has '_' replaced by '-' before lookup.
  common/common.h  struct common_params: defaults placer cares about.
  tools/*/*.cpp    which LLAMA_EXAMPLE_* each tool passes to common_params_parse.
  tools/server/server.cpp   what -np auto (-1) becomes.
Stdlib only; the C++ is scanned with a small tokenizer aware of strings, raw strings, chars and comments.
"""
import argparse
import os
import re
import sys


# ---------------------------------------------------------------- C++ scanning helpers

def skip_literal(s, i):
    """If s[i] starts a string/char literal or comment, return the index after it, else None."""
    c = s[i]
    if c == '/' and s.startswith('//', i):
        j = s.find('\n', i)
        return len(s) if j < 0 else j
    if c == '/' and s.startswith('/*', i):
        j = s.find('*/', i + 2)
        return len(s) if j < 0 else j + 2
    if c == 'R' and s.startswith('R"', i) and (i == 0 or not (s[i - 1].isalnum() or s[i - 1] == '_')):
        m = re.match(r'R"([^(\s]*)\(', s[i:])
        if m:
            end = ')' + m.group(1) + '"'
            j = s.find(end, i + m.end())
            return len(s) if j < 0 else j + len(end)
    if c == '"' or c == "'":
        j = i + 1
        while j < len(s):
            if s[j] == '\\':
                j += 2
                continue
            if s[j] == c:
                return j + 1
            j += 1
        return len(s)
    return None


def match_close(s, i):
    """s[i] is an opening bracket; return the index of its matching closer."""
    pairs = {'(': ')', '{': '}', '[': ']'}
    stack = [pairs[s[i]]]
    j = i + 1
    while j < len(s):
        k = skip_literal(s, j)
        if k is not None:
            j = k
            continue
        c = s[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ')}]':
            if c != stack[-1]:
                raise ValueError(f'unbalanced {c!r} at {j}')
            stack.pop()
            if not stack:
                return j
        j += 1
    raise ValueError('unterminated bracket')


def split_top(s):
    """Split on top-level commas."""
    parts, depth, cur, i = [], 0, 0, 0
    while i < len(s):
        k = skip_literal(s, i)
        if k is not None:
            i = k
            continue
        c = s[i]
        if c in '({[':
            depth += 1
        elif c in ')}]':
            depth -= 1
        elif c == ',' and depth == 0:
            parts.append(s[cur:i].strip())
            cur = i + 1
        i += 1
    last = s[cur:].strip()
    if last:
        parts.append(last)
    return parts


def c_string(expr):
    """Value of an expression made only of adjacent string literals, else None."""
    expr = expr.strip()
    out, i = [], 0
    while i < len(expr):
        if expr[i].isspace():
            i += 1
            continue
        if expr[i] != '"':
            return None
        j = skip_literal(expr, i)
        lit = expr[i + 1:j - 1]
        out.append(bytes(lit, 'utf-8').decode('unicode_escape'))
        i = j
    return ''.join(out)


def string_list(expr):
    """`{"-c", "--ctx-size"}` -> ['-c', '--ctx-size']."""
    expr = expr.strip()
    assert expr.startswith('{') and expr.endswith('}'), expr
    return [c_string(p) for p in split_top(expr[1:-1])]


def strip_comments(s):
    out, i = [], 0
    while i < len(s):
        if s.startswith('//', i) or s.startswith('/*', i):
            i = skip_literal(s, i)
            continue
        k = skip_literal(s, i)
        if k is not None:
            out.append(s[i:k])
            i = k
            continue
        out.append(s[i])
        i += 1
    return ''.join(out)


def function_body(src, signature_re):
    m = re.search(signature_re, src)
    if not m:
        raise SystemExit(f'not found: {signature_re}')
    o = src.index('{', m.end())
    return src[o + 1:match_close(src, o)], src.count('\n', 0, o + 1) + 1


# ---------------------------------------------------------------- arg.cpp

def kv_cache_types(src, tree):
    m = re.search(r'kv_cache_types\s*=\s*\{([^}]*)\}', src)
    if not m:
        return []
    names = []
    for t in re.findall(r'GGML_TYPE_(\w+)', m.group(1)):
        names.append(ggml_type_name(tree, t))
    return names


_GGML_NAMES = None


def ggml_type_name(tree, enum_suffix):
    """ggml.c type_traits[GGML_TYPE_X].type_name (what ggml_type_name returns)."""
    global _GGML_NAMES
    if _GGML_NAMES is None:
        _GGML_NAMES = {}
        p = os.path.join(tree, 'ggml', 'src', 'ggml.c')
        if os.path.exists(p):
            src = open(p, encoding='utf-8', errors='replace').read()
            for m in re.finditer(r'\[GGML_TYPE_(\w+)\]\s*=\s*\{[^}]*?\.type_name\s*=\s*"([^"]+)"', src, re.S):
                _GGML_NAMES[m.group(1)] = m.group(2)
    return _GGML_NAMES.get(enum_suffix, enum_suffix.lower())


def handler_info(handler, kv_types):
    """Kind of handler and what its body accepts."""
    info = {}
    m = re.match(r'\[[^\]]*\]\s*\(([^)]*)\)', handler)
    if not m:
        info['kind'] = 'function'
        return info
    params = [p.strip() for p in m.group(1).split(',') if p.strip()]
    body = strip_comments(handler[m.end():])
    types = params[1:]
    if not types:
        info['kind'] = 'flag'
    elif len(types) == 2:
        info['kind'] = 'two-values'
    elif re.match(r'bool\b', types[0]):
        info['kind'] = 'bool'
    elif re.match(r'int\b', types[0]):
        info['kind'] = 'int'
    else:
        info['kind'] = 'string'
    if len(types) == 1:
        var = re.findall(r'\w+', types[0])[-1]
        # `std::string arg_next = value;` copies: compare against those too
        copies = re.findall(r'std::string\s+(\w+)\s*=\s*' + var + r'\s*;', body)
        var = '(?:' + '|'.join([var] + copies) + ')'
        values = []
        for v in re.findall(r'\b' + var + r'\s*==\s*("(?:[^"\\]|\\.)*")', body):
            s = c_string(v)
            if s not in values:
                values.append(s)
        words = [w for w in ('truthy', 'falsey', 'autoy') if re.search(r'is_' + w + r'\s*\(\s*' + var + r'\s*\)', body)]
        if re.search(r'kv_cache_type_from_str\s*\(\s*' + var + r'\s*\)', body):
            values += [t for t in kv_types if t not in values]
            info['closed'] = True  # kv_cache_type_from_str throws "Unsupported cache type"
        if values:
            info['values'] = values
        if words:
            info['bool_words'] = words
        convs = sorted(set(re.findall(r'std::(sto(?:i|l|ll|ul|ull|f|d))\s*\(\s*' + var + r'\s*\)', body)))
        if convs:
            info['parses'] = convs
        # a final `else { throw ... }` / `else throw`: nothing outside the listed values passes
        if (values or words) and re.search(r'else\s*\{?\s*throw\b', body):
            info['closed'] = True
        rejects = []
        for cond in re.findall(r'if\s*\(\s*(' + var + r'\s*(?:<|<=|==|>|>=|!=)\s*-?\d+)\s*\)\s*\{?\s*throw\b', body):
            rejects.append(re.sub(r'\s+', ' ', re.sub(r'^\w+', 'value', cond)))
        if rejects:
            info['rejects'] = rejects
    return info


def parse_options(tree):
    path = os.path.join(tree, 'common', 'arg.cpp')
    src = open(path, encoding='utf-8', errors='replace').read()
    kv_types = kv_cache_types(src, tree)
    body, _ = function_body(src, r'common_params_context\s+common_params_parser_init\s*\(')
    # stop at `return ctx_arg;` (preset-only args are added elsewhere)
    options = []
    cond_stack = []   # (closing-brace depth, condition)
    depth = 0
    last_if = None
    i = 0
    while i < len(body):
        k = skip_literal(body, i)
        if k is not None:
            i = k
            continue
        if body.startswith('add_opt(common_arg(', i) or body.startswith('add_opt(common_arg (', i):
            o = body.index('(', i)
            close = match_close(body, o)
            call = body[o + 1:close]
            options.append(one_option(call, kv_types, [c for _, c in cond_stack]))
            i = close + 1
            continue
        m = re.match(r'(\}\s*else\s+)?if\s*\(', body[i:])
        if m and (i == 0 or not (body[i - 1].isalnum() or body[i - 1] == '_')):
            po = i + m.end() - 1
            pc = match_close(body, po)
            cond = re.sub(r'\s+', ' ', body[po + 1:pc].strip())
            if m.group(1):  # `} else if (...)`: closes the previous branch
                depth -= 1
                if cond_stack and cond_stack[-1][0] == depth + 1:
                    cond_stack.pop()
            j = pc + 1
            while body[j].isspace():
                j += 1
            if body[j] == '{':
                depth += 1
                cond_stack.append((depth, cond))
                last_if = cond
                i = j + 1
                continue
            i = pc + 1
            continue
        m = re.match(r'\}\s*else\s*\{', body[i:])
        if m:
            depth -= 1
            prev = cond_stack.pop()[1] if cond_stack and cond_stack[-1][0] == depth + 1 else last_if
            depth += 1
            cond_stack.append((depth, f'!({prev})'))
            i += m.end()
            continue
        c = body[i]
        if c == '{':
            depth += 1
        elif c == '}':
            if cond_stack and cond_stack[-1][0] == depth:
                cond_stack.pop()
            depth -= 1
        elif body.startswith('return ctx_arg', i):
            break
        i += 1
    return options, kv_types, src


def one_option(call, kv_types, conds):
    # call = `common_arg( ... ).set_examples(...).set_env(...)`
    call = strip_comments(call)
    o = call.index('(')
    c = match_close(call, o)
    ctor = split_top(call[o + 1:c])
    chain = call[c + 1:]
    opt = {'names': string_list(ctor[0])}
    rest = ctor[1:]
    if rest and rest[0].startswith('{'):
        opt['negated'] = string_list(rest[0])
        rest = rest[1:]
    handler = rest[-1]
    info = handler_info(handler, kv_types)
    kind = info.pop('kind')
    hints = rest[:-2]  # value hint(s) precede the help text
    if kind == 'function':
        kind = {0: 'flag', 1: 'value', 2: 'two-values'}[len(hints)]
    if 'negated' in opt:
        kind = 'bool'
    opt['kind'] = kind
    if hints:
        opt['hint'] = [c_string(h) if c_string(h) is not None else h for h in hints]
    if kind == 'int':
        opt['int'] = 'i32'  # common_params_parse_ex: handler_int(params, std::stoi(val))
    opt.update(info)
    for name, arg in re.findall(r'\.(set_examples|set_excludes)\s*\(\s*\{([^}]*)\}\s*\)', chain):
        key = 'examples' if name == 'set_examples' else 'excludes'
        opt[key] = [e.replace('LLAMA_EXAMPLE_', '') for e in re.findall(r'LLAMA_EXAMPLE_\w+', arg)]
    m = re.search(r'\.set_env\s*\(\s*("(?:[^"\\]|\\.)*")\s*\)', chain)
    if m:
        opt['env'] = c_string(m.group(1))
    for flag in ('set_sampling', 'set_spec', 'set_preset_only'):
        if re.search(r'\.' + flag + r'\s*\(\s*\)', chain):
            opt[flag[4:]] = True
    for cond in conds:
        m = re.fullmatch(r'(!\()?ex == LLAMA_EXAMPLE_(\w+)\)?', cond)
        if m:
            opt['unless_example' if m.group(1) else 'if_example'] = m.group(2)
        else:
            opt.setdefault('condition', []).append(cond)
    return opt


def parser_facts(src):
    body, _ = function_body(src, r'static\s+bool\s+common_params_parse_ex\s*\(')
    body = strip_comments(body)
    facts = {}
    facts['underscore_to_dash'] = bool(re.search(r"std::replace\s*\(\s*arg\.begin\(\)\s*,\s*arg\.end\(\)\s*,\s*'_'\s*,\s*'-'\s*\)", body))
    facts['int_parse'] = 'std::stoi' if re.search(r'handler_int\s*\(\s*params\s*,\s*std::stoi\s*\(', body) else 'unknown'
    # `--flag=value`: only if the parser splits on '='
    facts['equals_syntax'] = bool(re.search(r"find\s*\(\s*'='\s*\)", body))
    return facts


# ---------------------------------------------------------------- common.h, tools

DEFAULT_FIELDS = [
    'n_ctx', 'n_batch', 'n_ubatch', 'n_parallel', 'n_gpu_layers', 'main_gpu', 'split_mode', 'load_mode',
    'use_mmap', 'use_mlock', 'use_direct_io', 'flash_attn_type', 'fit_params', 'fit_params_print',
    'fit_params_min_ctx', 'fit_params_target', 'cache_type_k', 'cache_type_v', 'kv_unified', 'swa_full',
    'no_kv_offload', 'no_op_offload', 'no_host', 'cont_batching',
]


def parse_defaults(tree, arg_src):
    src = strip_comments(open(os.path.join(tree, 'common', 'common.h'), encoding='utf-8', errors='replace').read())
    m = re.search(r'struct\s+common_params\s*\{', src)
    o = m.end() - 1
    body = src[o + 1:match_close(src, o)]
    # top-level members only (skip nested braces)
    flat, depth = [], 0
    for ch in body:
        if ch == '{':
            depth += 1
        if depth == 0:
            flat.append(ch)
        if ch == '}':
            depth -= 1
    flat = ''.join(flat)
    raw = {}
    for stmt in flat.split(';'):
        m = re.match(r'\s*(?:enum\s+)?[\w:<>, ]+?\s+(\w+)\s*=\s*(.+?)\s*$', stmt, re.S)
        if m and m.group(1) in DEFAULT_FIELDS:
            raw[m.group(1)] = re.sub(r'\s+', ' ', m.group(2))
    d = {}
    for k in DEFAULT_FIELDS:
        if k not in raw:
            continue
        v = raw[k]
        if re.fullmatch(r'-?\d+', v):
            d[k] = int(v)
        elif v in ('true', 'false'):
            d[k] = v == 'true'
        elif k == 'fit_params_target':
            mm = re.search(r',\s*([\d\s*]+)\)\s*$', v)
            if mm:
                prod = 1
                for f in re.findall(r'\d+', mm.group(1)):
                    prod *= int(f)
                d['fit_target_mib'] = prod // (1024 * 1024)
        elif v.startswith('GGML_TYPE_'):
            d[k] = ggml_type_name(tree, v[len('GGML_TYPE_'):])
        else:
            d[k] = v
    # per-example defaults set at the top of common_params_parser_init
    body, _ = function_body(arg_src, r'common_params_context\s+common_params_parser_init\s*\(')
    m = re.search(r'ex\s*==\s*LLAMA_EXAMPLE_SERVER\s*\)\s*\{([^}]*)\}', body)
    if m:
        mm = re.search(r'params\.n_parallel\s*=\s*(-?\d+)', m.group(1))
        if mm:
            d['server_n_parallel'] = int(mm.group(1))
    srv = os.path.join(tree, 'tools', 'server', 'server.cpp')
    if os.path.exists(srv):
        s = open(srv, encoding='utf-8', errors='replace').read()
        mm = re.search(r'if\s*\(\s*params\.n_parallel\s*(?:<\s*0|==\s*-1)\s*\)\s*\{(.*?)\}', s, re.S)
        if mm:
            n = re.search(r'params\.n_parallel\s*=\s*(\d+)', mm.group(1))
            if n:
                d['server_auto_parallel'] = int(n.group(1))
            d['server_auto_kv_unified'] = bool(re.search(r'params\.kv_unified\s*=\s*true', mm.group(1)))
    return d


TOOLS = {
    'server': 'tools/server/server.cpp',
    'fit-params': 'tools/fit-params/fit-params.cpp',
    'cli': 'tools/cli/cli.cpp',
    'completion': 'tools/completion/completion.cpp',
    'main': 'tools/main/main.cpp',
    'bench': 'tools/llama-bench/llama-bench.cpp',
}


def tool_examples(tree):
    out = {}
    for tool, rel in TOOLS.items():
        p = os.path.join(tree, rel)
        if not os.path.exists(p):
            continue
        m = re.search(r'common_params_parse\s*\([^;]*?LLAMA_EXAMPLE_(\w+)', open(p, encoding='utf-8', errors='replace').read())
        out[tool] = m.group(1) if m else 'own-parser'
    return out


def version_format(src):
    """What `--version` prints (arg.cpp's --version handler)."""
    m = re.search(r'\{\s*"--version"\s*\}.*?exit\s*\(\s*0\s*\)', src, re.S)
    text = m.group(0) if m else ''
    if 'llama_print_build_info(llama_version())' in text.replace(' ', ''):
        return 'version: <llama_version> (build <N>, commit <hash>)'
    if re.search(r'"version: %d \(%s\)', text):
        return 'version: <N> (<hash>)'
    return 'unknown'


# ---------------------------------------------------------------- TOML writer

def tq(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n').replace('\t', '\\t') + '"'


def tv(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return '[' + ', '.join(tv(x) for x in v) + ']'
    return tq(str(v))


ORDER = ['names', 'negated', 'kind', 'hint', 'int', 'values', 'bool_words', 'closed', 'parses', 'rejects',
         'examples', 'excludes', 'if_example', 'unless_example', 'condition', 'env', 'sampling', 'spec', 'preset_only']


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('tree')
    ap.add_argument('--build', type=int, required=True)
    ap.add_argument('--commit', required=True)
    ap.add_argument('--source', required=True, help='the sdist the tree came from')
    ap.add_argument('--build-note', default='', help='how the build number was established')
    ap.add_argument('--out', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data', 'llama-builds'))
    a = ap.parse_args()
    options, kv_types, src = parse_options(a.tree)
    facts = parser_facts(src)
    defaults = parse_defaults(a.tree, src)
    tools = tool_examples(a.tree)
    lines = [
        f'# llama.cpp option table of build {a.build}, extracted from common/arg.cpp and common/common.h.',
        '# Generated, do not edit:',
        f'#   python3 testbed/llama-options.py <{a.source} tree> --build {a.build} --commit {a.commit} \\',
        f'#       --source {tq(a.source)}' + (f' --build-note {tq(a.build_note)}' if a.build_note else ''),
        '# Option fields: names (aliases), negated (--no-… names of a bool option), kind (flag | bool | int |',
        '# string | two-values), hint (value hint), int = "i32" (std::stoi), values / bool_words / closed (what',
        '# the handler accepts; closed = anything else throws), parses (std::sto* on the value), rejects',
        '# (integer checks that throw), examples / excludes (set_examples / set_excludes; none = COMMON),',
        '# if_example / unless_example (added only inside `if (ex == LLAMA_EXAMPLE_…)`), env (set_env).',
        '',
        f'build = {a.build}',
        f'commit = {tq(a.commit)}',
        f'source = {tq(a.source)}',
    ]
    if a.build_note:
        lines.append(f'build_note = {tq(a.build_note)}')
    lines.append(f'version_format = {tq(version_format(src))}')
    lines.append(f'kv_cache_types = {tv(kv_types)}')
    lines.append('')
    lines.append('[parser]')
    for k, v in facts.items():
        lines.append(f'{k} = {tv(v)}')
    lines.append('')
    lines.append('[tools]')
    for k, v in tools.items():
        lines.append(f'{tq(k)} = {tq(v)}')
    lines.append('')
    lines.append('[defaults]')
    for k, v in defaults.items():
        lines.append(f'{k} = {tv(v)}')
    for o in options:
        lines.append('')
        lines.append('[[options]]')
        for k in ORDER:
            if k in o:
                lines.append(f'{k} = {tv(o[k])}')
    os.makedirs(a.out, exist_ok=True)
    out = os.path.join(a.out, f'b{a.build}.toml')
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'{out}: {len(options)} options', file=sys.stderr)


if __name__ == '__main__':
    main()
