using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace ClipSharp.Checkpoints;

/// <summary>A reference to a Python global that passed the whitelist (module + qualified name).</summary>
internal sealed record PyGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
    public override string ToString() => FullName;
}

/// <summary>An inert attribute bag standing for an instance of a whitelisted class (TorchScript <c>__torch__.*</c>
/// modules, <c>argparse.Namespace</c>). Nothing of the class is ever executed.</summary>
internal sealed class PyObject(PyGlobal type, object?[] args)
{
    public PyGlobal Type { get; } = type;
    public object?[] Args { get; } = args;
    /// <summary>Attributes from BUILD (a dict state), in insertion order.</summary>
    public PyDict Attributes { get; } = new();
    /// <summary>A non-dict BUILD state, if any.</summary>
    public object? State { get; set; }
    public override string ToString() => $"<{Type.FullName} object>";
}

/// <summary>An insertion-ordered Python dict.</summary>
internal sealed class PyDict
{
    readonly List<object> _keys = [];
    readonly Dictionary<object, object?> _map = [];
    public int Count => _keys.Count;
    public IEnumerable<object> Keys => _keys;
    public IEnumerable<KeyValuePair<object, object?>> Items => _keys.Select(k => new KeyValuePair<object, object?>(k, _map[k]));
    public void Set(object key, object? value)
    {
        if (!_map.ContainsKey(key)) _keys.Add(key);
        _map[key] = value;
    }
    public bool TryGet(object key, out object? value) => _map.TryGetValue(key, out value);
    public object? this[object key] => _map[key];
}

/// <summary>A tuple (distinct from a list).</summary>
internal sealed record PyTuple(object?[] Items)
{
    public int Length => Items.Length;
    public object? this[int i] => Items[i];
}

/// <summary>
/// A pickle virtual machine that only builds plain data: None, bools, ints, floats, strings, bytes, lists, tuples,
/// dicts, and whatever the caller's whitelist resolves GLOBAL references to. It never imports or calls anything:
/// GLOBAL/STACK_GLOBAL names outside the whitelist abort loading, and REDUCE/NEWOBJ/BUILD are only applied through
/// the caller-supplied handlers for whitelisted names.
/// </summary>
internal sealed class SafeUnpickler
{
    /// <summary>Decides whether a global may be referenced; returns the value it stands for, or null to refuse.</summary>
    public required Func<string, string, object?> ResolveGlobal { get; init; }
    /// <summary>Applies a whitelisted callable (REDUCE).</summary>
    public required Func<object, object?[], object?> Call { get; init; }
    /// <summary>Resolves a persistent id (BINPERSID / PERSID).</summary>
    public required Func<object?, object?> PersistentLoad { get; init; }
    /// <summary>File name used in error messages.</summary>
    public required string Source { get; init; }

    static readonly object Mark = new();

    byte[] _data = [];
    int _pos;
    readonly List<object?> _stack = [];
    readonly List<int> _marks = [];
    readonly Dictionary<long, object?> _memo = [];

    ClipSharpException Bad(string what) => new($"{Source}: malformed pickle at byte {_pos}: {what}");

    /// <summary>Runs the pickle program in <paramref name="data"/> and returns the object STOP leaves on the stack.</summary>
    public object? Load(byte[] data)
    {
        _data = data;
        _pos = 0;
        _stack.Clear(); _marks.Clear(); _memo.Clear();
        while (true)
        {
            if (_pos >= _data.Length) throw Bad("ran out of data before STOP (truncated pickle)");
            byte op = _data[_pos++];
            switch (op)
            {
                case 0x80: ReadByte(); break; // PROTO
                case 0x95: ReadBytes(8); break; // FRAME: framing is only an I/O hint
                case (byte)'.': // STOP
                    if (_stack.Count != 1) throw Bad($"STOP with {_stack.Count} items on the stack");
                    return _stack[0];
                case (byte)'(': _marks.Add(_stack.Count); _stack.Add(Mark); break;
                case (byte)'0': Pop(); break;
                case (byte)'1': PopMark(); break;
                case (byte)'2': Push(Peek()); break;
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))); break;
                case (byte)'K': Push((long)ReadByte()); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2))); break;
                case 0x8a: Push(DecodeLong(ReadBytes(ReadByte()))); break; // LONG1
                case 0x8b: Push(DecodeLong(ReadBytes(ReadLen4()))); break; // LONG4
                case (byte)'I': // INT (text)
                    {
                        var s = ReadLine();
                        Push(s switch { "01" => true, "00" => false, _ => ParseLong(s) });
                        break;
                    }
                case (byte)'L': Push(ParseLong(ReadLine().TrimEnd('L'))); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break;
                case (byte)'F': Push(double.Parse(ReadLine(), System.Globalization.CultureInfo.InvariantCulture)); break;
                case 0x8c: Push(Utf8(ReadBytes(ReadByte()))); break; // SHORT_BINUNICODE
                case (byte)'X': Push(Utf8(ReadBytes(ReadLen4()))); break; // BINUNICODE
                case 0x8d: Push(Utf8(ReadBytes(ReadLen8()))); break; // BINUNICODE8
                case (byte)'U': Push(Encoding.Latin1.GetString(ReadBytes(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'T': Push(Encoding.Latin1.GetString(ReadBytes(ReadLen4()))); break; // BINSTRING
                case (byte)'C': Push(ReadBytes(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                case (byte)'B': Push(ReadBytes(ReadLen4()).ToArray()); break; // BINBYTES
                case 0x8e: Push(ReadBytes(ReadLen8()).ToArray()); break; // BINBYTES8
                case 0x96: Push(ReadBytes(ReadLen8()).ToArray()); break; // BYTEARRAY8
                case (byte)'}': Push(new PyDict()); break;
                case (byte)']': Push(new List<object?>()); break;
                case (byte)')': Push(new PyTuple([])); break;
                case 0x8f: Push(new List<object?>()); break; // EMPTY_SET (a list is enough: we never hash sets)
                case 0x90: // ADDITEMS
                    {
                        var items = PopMark();
                        if (Peek() is not List<object?> set) throw Bad("ADDITEMS on a non-set");
                        set.AddRange(items);
                        break;
                    }
                case 0x91: Push(new List<object?>(PopMark())); break; // FROZENSET
                case (byte)'d': Push(MakeDict(PopMark())); break; // DICT
                case (byte)'l': Push(new List<object?>(PopMark())); break; // LIST
                case (byte)'t': Push(new PyTuple(PopMark())); break; // TUPLE
                case 0x85: { var a = Pop(); Push(new PyTuple([a])); break; }
                case 0x86: { var b = Pop(); var a = Pop(); Push(new PyTuple([a, b])); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PyTuple([a, b, c])); break; }
                case (byte)'s': // SETITEM
                    {
                        var v = Pop(); var k = Pop();
                        AsDict(Peek(), "SETITEM").Set(Key(k), v);
                        break;
                    }
                case (byte)'u': // SETITEMS
                    {
                        var items = PopMark();
                        if (items.Length % 2 != 0) throw Bad("SETITEMS with an odd number of items");
                        var d = AsDict(Peek(), "SETITEMS");
                        for (int i = 0; i < items.Length; i += 2) d.Set(Key(items[i]), items[i + 1]);
                        break;
                    }
                case (byte)'a': { var v = Pop(); AsList(Peek()).Add(v); break; } // APPEND
                case (byte)'e': { var items = PopMark(); AsList(Peek()).AddRange(items); break; } // APPENDS
                case (byte)'q': _memo[ReadByte()] = Peek(); break; // BINPUT
                case (byte)'r': _memo[ReadLen4()] = Peek(); break; // LONG_BINPUT
                case 0x94: _memo[_memo.Count] = Peek(); break; // MEMOIZE
                case (byte)'p': _memo[ParseLong(ReadLine())] = Peek(); break; // PUT
                case (byte)'h': Push(Memo(ReadByte())); break; // BINGET
                case (byte)'j': Push(Memo(ReadLen4())); break; // LONG_BINGET
                case (byte)'g': Push(Memo(ParseLong(ReadLine()))); break; // GET
                case (byte)'c': // GLOBAL
                    {
                        var module = ReadLine();
                        var name = ReadLine();
                        Push(Global(module, name));
                        break;
                    }
                case 0x93: // STACK_GLOBAL
                    {
                        var name = Pop() as string ?? throw Bad("STACK_GLOBAL name is not a string");
                        var module = Pop() as string ?? throw Bad("STACK_GLOBAL module is not a string");
                        Push(Global(module, name));
                        break;
                    }
                case (byte)'R': // REDUCE
                    {
                        var args = Pop() as PyTuple ?? throw Bad("REDUCE arguments are not a tuple");
                        var fn = Pop() ?? throw Bad("REDUCE on None");
                        Push(Call(fn, args.Items));
                        break;
                    }
                case 0x81: // NEWOBJ
                    {
                        var args = Pop() as PyTuple ?? throw Bad("NEWOBJ arguments are not a tuple");
                        var cls = Pop() ?? throw Bad("NEWOBJ on None");
                        Push(Call(cls, args.Items));
                        break;
                    }
                case 0x92: // NEWOBJ_EX
                    {
                        Pop(); // kwargs
                        var args = Pop() as PyTuple ?? throw Bad("NEWOBJ_EX arguments are not a tuple");
                        var cls = Pop() ?? throw Bad("NEWOBJ_EX on None");
                        Push(Call(cls, args.Items));
                        break;
                    }
                case (byte)'b': // BUILD
                    {
                        var state = Pop();
                        Build(Peek(), state);
                        break;
                    }
                case (byte)'Q': { var pid = Pop(); Push(PersistentLoad(pid)); break; } // BINPERSID
                case (byte)'P': Push(PersistentLoad(ReadLine())); break; // PERSID
                default:
                    throw new ClipSharpException($"{Source}: the pickle uses opcode 0x{op:x2} ('{(op >= 32 && op < 127 ? (char)op : '?')}') at byte {_pos - 1}, " +
                        "which ClipSharp does not support (it only loads tensors and plain containers)");
            }
        }
    }

    object Global(string module, string name) =>
        ResolveGlobal(module, name) ?? throw new ClipSharpException(
            $"refusing to load {Source}: the pickle references {module}.{name}; ClipSharp only loads tensors and plain containers " +
            "(nothing in the checkpoint is executed)");

    void Build(object? target, object? state)
    {
        switch (target)
        {
            case PyObject o:
                if (state is PyDict d) foreach (var (k, v) in d.Items) o.Attributes.Set(k, v);
                else if (state is PyTuple { Length: 2 } t && (t[0] is PyDict || t[0] is null))
                {
                    if (t[0] is PyDict d0) foreach (var (k, v) in d0.Items) o.Attributes.Set(k, v);
                    if (t[1] is PyDict d1) foreach (var (k, v) in d1.Items) o.Attributes.Set(k, v);
                }
                else o.State = state;
                break;
            case PyDict:
                // An OrderedDict's instance attributes, e.g. a state_dict's _metadata (module versions): not needed.
                break;
            default:
                // Tensors built by _rebuild_tensor_v2 never get BUILD in practice; any other state is inert data we ignore.
                break;
        }
    }

    static PyDict MakeDict(object?[] items)
    {
        var d = new PyDict();
        for (int i = 0; i + 1 < items.Length; i += 2) d.Set(Key(items[i]), items[i + 1]);
        return d;
    }

    static object Key(object? k) => k switch
    {
        null => NoneKey,
        PyTuple t => string.Join("\u0001", t.Items.Select(x => x?.ToString() ?? "None")),
        _ => k,
    };

    static readonly string NoneKey = "\u0000None";

    PyDict AsDict(object? o, string op) => o as PyDict ?? throw Bad($"{op} on a {o?.GetType().Name ?? "None"}, not a dict");
    List<object?> AsList(object? o) => o as List<object?> ?? throw Bad($"APPEND on a {o?.GetType().Name ?? "None"}, not a list");

    object? Memo(long key) => _memo.TryGetValue(key, out var v) ? v : throw Bad($"memo key {key} was never stored");

    void Push(object? o) => _stack.Add(o);

    object? Pop()
    {
        if (_stack.Count == 0) throw Bad("stack underflow");
        var o = _stack[^1];
        if (ReferenceEquals(o, Mark)) throw Bad("unexpected MARK on the stack");
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    object? Peek()
    {
        if (_stack.Count == 0) throw Bad("stack underflow");
        var o = _stack[^1];
        if (ReferenceEquals(o, Mark)) throw Bad("unexpected MARK on the stack");
        return o;
    }

    object?[] PopMark()
    {
        if (_marks.Count == 0) throw Bad("no MARK to pop to");
        int m = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(m + 1, _stack.Count - m - 1).ToArray();
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    byte ReadByte()
    {
        if (_pos >= _data.Length) throw Bad("unexpected end of data");
        return _data[_pos++];
    }

    ReadOnlySpan<byte> ReadBytes(long n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Bad($"needs {n} bytes but only {_data.Length - _pos} remain (truncated pickle?)");
        var s = _data.AsSpan(_pos, (int)n);
        _pos += (int)n;
        return s;
    }

    int ReadLen4()
    {
        int n = BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4));
        if (n < 0) throw Bad("negative length");
        return n;
    }

    long ReadLen8()
    {
        long n = BinaryPrimitives.ReadInt64LittleEndian(ReadBytes(8));
        if (n < 0) throw Bad("negative length");
        return n;
    }

    string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Bad("unterminated text argument");
        var s = Encoding.UTF8.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return s;
    }

    long ParseLong(string s) => long.TryParse(s, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var v)
        ? v : throw Bad($"bad integer '{s}'");

    static string Utf8(ReadOnlySpan<byte> b) => Encoding.UTF8.GetString(b);

    static object DecodeLong(ReadOnlySpan<byte> b)
    {
        if (b.Length == 0) return 0L;
        var big = new BigInteger(b, isUnsigned: false, isBigEndian: false);
        return big >= long.MinValue && big <= long.MaxValue ? (long)big : big;
    }
}
