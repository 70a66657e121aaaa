using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Checkpoints;

/// <summary>What <see cref="TorchArchive.Load(string, out TorchArchiveInfo)"/> found besides the tensors.</summary>
/// <param name="IsTorchScript">True for a <c>torch.jit.save</c> archive (has <c>code/</c> or <c>constants.pkl</c>).</param>
/// <param name="RecordPrefix">The archive folder name, e.g. <c>rn_small/</c>.</param>
/// <param name="Extras">Non-tensor top-level values (e.g. OpenCLIP's <c>epoch</c>, <c>name</c>) rendered as strings.</param>
/// <param name="Notes">Things the reader skipped or changed, in plain words (e.g. a stripped <c>module.</c> prefix).</param>
internal sealed record TorchArchiveInfo(bool IsTorchScript, string RecordPrefix, IReadOnlyDictionary<string, string> Extras, IReadOnlyList<string> Notes);

/// <summary>
/// Reader for PyTorch zip checkpoints: <c>torch.save</c> files (.pt/.pth/.bin) and TorchScript archives such as
/// OpenAI's released CLIP models. The pickle is run by a whitelisting VM that never executes code; tensors are read
/// from the <c>data/&lt;key&gt;</c> records. Tensors keep their stored dtype (see <see cref="CheckpointLoader"/> for upcasting).
/// </summary>
internal static partial class TorchArchive
{
    /// <summary>Loads the state_dict of a torch zip checkpoint.</summary>
    /// <exception cref="ClipSharpException">Not a readable zip, no data.pkl, a refused global, or inconsistent records.</exception>
    public static StateDict Load(string path) => Load(path, out _);

    /// <summary>Loads the state_dict and reports what else the archive held.</summary>
    public static StateDict Load(string path, out TorchArchiveInfo info)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096, FileOptions.RandomAccess);
        ZipArchive zip;
        try { zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: true); }
        catch (InvalidDataException e)
        {
            throw new ClipSharpException($"{path}: not a readable zip archive ({e.Message}); the file is probably truncated or corrupt", e);
        }
        using (zip)
        {
            var dataPkl = FindDataPkl(zip, path);
            string prefix = dataPkl.FullName[..^"data.pkl".Length];
            bool isScript = zip.GetEntry(prefix + "constants.pkl") is not null || zip.Entries.Any(e => e.FullName.StartsWith(prefix + "code/", StringComparison.Ordinal));
            var reader = new Reader(zip, prefix, path);
            byte[] pkl = ReadAll(dataPkl, path);
            var extras = new Dictionary<string, string>(StringComparer.Ordinal);
            var notes = new List<string>();
            using var scope = torch.NewDisposeScope(); // cached storages die with it
            object? root = reader.Unpickle(pkl, "data.pkl");
            var sd = new StateDict();
            try
            {
                if (root is PyObject module)
                {
                    var decl = isScript ? ReadDeclarations(zip, prefix, path) : [];
                    FlattenModule(module, "", sd, reader, decl, notes);
                }
                else if (root is PyDict dict)
                {
                    var stateDict = PickStateDict(dict, extras, notes);
                    foreach (var (k, v) in stateDict.Items)
                    {
                        string key = k as string ?? k.ToString()!;
                        if (v is TensorSpec spec) sd.Add(key, reader.Materialize(spec, key));
                        else notes.Add($"skipped non-tensor entry '{key}' ({Describe(v)})");
                    }
                    StripPrefix(sd, "module.", notes);
                }
                else throw new ClipSharpException($"{path}: the checkpoint holds a {Describe(root)}, not a state_dict or a scripted module");
            }
            catch
            {
                sd.Dispose();
                throw;
            }
            info = new TorchArchiveInfo(isScript, prefix, extras, notes);
            return sd;
        }
    }

    /// <summary>Finds <c>&lt;archive&gt;/data.pkl</c>; throws naming the file when there is none.</summary>
    internal static ZipArchiveEntry FindDataPkl(ZipArchive zip, string path)
    {
        var e = zip.Entries.Where(e => e.FullName == "data.pkl" || (e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1))
            .OrderBy(e => e.FullName.Length).FirstOrDefault();
        return e ?? throw new ClipSharpException($"{path}: the zip archive has no <archive>/data.pkl record, so it is not a PyTorch checkpoint");
    }

    static byte[] ReadAll(ZipArchiveEntry e, string path)
    {
        if (e.Length > int.MaxValue) throw new ClipSharpException($"{path}: record {e.FullName} is implausibly large ({e.Length} bytes)");
        var buf = new byte[e.Length];
        try
        {
            using var s = e.Open();
            s.ReadExactly(buf);
        }
        catch (Exception ex) when (ex is EndOfStreamException or InvalidDataException or ClipSharpException)
        {
            throw new ClipSharpException($"{path}: record {e.FullName} cannot be read ({ex.Message}); the file is probably truncated or corrupt", ex);
        }
        return buf;
    }

    static PyDict PickStateDict(PyDict root, Dictionary<string, string> extras, List<string> notes)
    {
        foreach (var name in new[] { "state_dict", "model_state_dict", "model" })
        {
            if (root.TryGet(name, out var inner) && inner is PyDict d && d.Items.Any(kv => kv.Value is TensorSpec))
            {
                foreach (var (k, v) in root.Items)
                    if (!Equals(k, name)) extras[k.ToString()!] = Describe(v);
                notes.Add($"used the '{name}' entry of the checkpoint dictionary");
                return d;
            }
        }
        return root;
    }

    static void StripPrefix(StateDict sd, string prefix, List<string> notes)
    {
        if (sd.Count == 0 || !sd.Keys.All(k => k.StartsWith(prefix, StringComparison.Ordinal))) return;
        foreach (var k in sd.Keys.ToList()) sd.Rename(k, k[prefix.Length..]);
        notes.Add($"stripped the '{prefix}' prefix (DistributedDataParallel) from every key");
    }

    internal static string Describe(object? v) => v switch
    {
        null => "None",
        string s => s,
        bool b => b ? "True" : "False",
        long or double or System.Numerics.BigInteger => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)!,
        TensorSpec t => $"tensor [{string.Join(",", t.Size)}]",
        PyDict d => $"dict of {d.Count}",
        List<object?> l => $"list of {l.Count}",
        PyTuple t => $"tuple of {t.Length}",
        PyObject o => $"{o.Type.FullName} object",
        byte[] b => $"{b.Length} bytes",
        _ => v.ToString() ?? v.GetType().Name,
    };

    // ---- TorchScript module trees ----

    /// <summary>Parameter and buffer names declared per TorchScript class (qualified name → names).</summary>
    static Dictionary<string, HashSet<string>> ReadDeclarations(ZipArchive zip, string prefix, string path)
    {
        var result = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        string codeDir = prefix + "code/";
        foreach (var e in zip.Entries)
        {
            if (!e.FullName.StartsWith(codeDir, StringComparison.Ordinal) || !e.FullName.EndsWith(".py", StringComparison.Ordinal)) continue;
            string module = e.FullName[codeDir.Length..^3].Replace('/', '.');
            string text = Encoding.UTF8.GetString(ReadAll(e, path));
            var classes = ClassHeader().Matches(text);
            for (int i = 0; i < classes.Count; i++)
            {
                int start = classes[i].Index, end = i + 1 < classes.Count ? classes[i + 1].Index : text.Length;
                string body = text[start..end];
                var names = new HashSet<string>(StringComparer.Ordinal);
                foreach (Match decl in SlotList().Matches(body))
                    foreach (Match n in QuotedName().Matches(decl.Groups[1].Value)) names.Add(n.Groups[1].Success ? n.Groups[1].Value : n.Groups[2].Value);
                result[$"{module}.{classes[i].Groups[1].Value}"] = names;
            }
        }
        return result;
    }

    [GeneratedRegex(@"^class\s+(\w+)\s*\(", RegexOptions.Multiline)]
    private static partial Regex ClassHeader();
    [GeneratedRegex(@"^\s+__(?:parameters|buffers)__\s*=\s*\[([^\]]*)\]", RegexOptions.Multiline)]
    private static partial Regex SlotList();
    [GeneratedRegex("\"([^\"]+)\"|'([^']+)'")]
    private static partial Regex QuotedName();

    static void FlattenModule(PyObject module, string prefix, StateDict sd, Reader reader, Dictionary<string, HashSet<string>> decl, List<string> notes)
    {
        decl.TryGetValue(module.Type.FullName, out var declared);
        var children = new List<(string, PyObject)>();
        foreach (var (k, v) in module.Attributes.Items)
        {
            string name = k as string ?? k.ToString()!;
            if (v is TensorSpec spec)
            {
                if (declared is not null && !declared.Contains(name))
                {
                    notes.Add($"skipped tensor attribute '{prefix}{name}' (not a parameter or buffer)");
                    continue;
                }
                sd.Add(prefix + name, reader.Materialize(spec, prefix + name));
            }
            else if (v is PyObject child && child.Type.Module.StartsWith("__torch__", StringComparison.Ordinal))
                children.Add((name, child));
        }
        foreach (var (name, child) in children) FlattenModule(child, prefix + name + ".", sd, reader, decl, notes);
    }

    // ---- pickle glue ----

    /// <summary>A storage named by a persistent id: dtype, record key and element count.</summary>
    internal sealed record StorageRef(ScalarType DType, string Key, long Numel);

    /// <summary>A tensor as <c>_rebuild_tensor_v2</c> describes it, materialised on demand.</summary>
    internal sealed record TensorSpec(StorageRef Storage, long Offset, long[] Size, long[] Stride);

    sealed record StorageType(ScalarType DType, string Name);

    static readonly Dictionary<string, ScalarType> StorageTypes = new()
    {
        ["FloatStorage"] = ScalarType.Float32, ["HalfStorage"] = ScalarType.Float16, ["BFloat16Storage"] = ScalarType.BFloat16,
        ["DoubleStorage"] = ScalarType.Float64, ["LongStorage"] = ScalarType.Int64, ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16, ["CharStorage"] = ScalarType.Int8, ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    static readonly HashSet<string> TorchDTypes =
    [
        "float16", "half", "float32", "float", "bfloat16", "float64", "double", "int64", "long", "int32", "int",
        "int16", "short", "int8", "uint8", "bool",
    ];

    static readonly HashSet<string> Allowed =
    [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type_v2",
        "torch.Size", "torch.device", "torch.Tensor", "torch.nn.parameter.Parameter",
        "argparse.Namespace", "_codecs.encode", "builtins.set", "builtins.frozenset",
        "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_floatlist", "torch.jit._pickle.build_doublelist",
        "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.restore_type_tag",
    ];

    /// <summary>The whitelist: what a GLOBAL may name. Returns null to refuse.</summary>
    internal static object? ResolveGlobal(string module, string name)
    {
        if (module == "torch" && StorageTypes.TryGetValue(name, out var dt)) return new StorageType(dt, name);
        if (module == "torch" && TorchDTypes.Contains(name)) return new PyGlobal(module, name);
        if ((module == "__torch__" || module.StartsWith("__torch__.", StringComparison.Ordinal)) && IsIdentifier(name)) return new PyGlobal(module, name);
        return Allowed.Contains(module + "." + name) ? new PyGlobal(module, name) : null;
    }

    static bool IsIdentifier(string s) => s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    sealed class Reader(ZipArchive zip, string prefix, string path)
    {
        readonly Dictionary<string, Tensor> _storages = new(StringComparer.Ordinal);

        public object? Unpickle(byte[] pkl, string record)
        {
            var vm = new SafeUnpickler
            {
                Source = path,
                ResolveGlobal = TorchArchive.ResolveGlobal,
                Call = Call,
                PersistentLoad = PersistentLoad,
            };
            try { return vm.Load(pkl); }
            catch (InvalidCastException e) { throw new ClipSharpException($"{path}: unexpected value types in {record} ({e.Message})", e); }
        }

        object? PersistentLoad(object? pid)
        {
            if (pid is PyTuple { Length: >= 5 } t && t[0] is "storage" && t[1] is StorageType st && t[2] is string key && t[4] is long numel)
                return new StorageRef(st.DType, key, numel);
            if (pid is PyTuple { Length: >= 5 } u && u[0] is "storage")
                throw new ClipSharpException($"{path}: unsupported storage reference ({Describe(u[1])}, key {Describe(u[2])})");
            throw new ClipSharpException($"{path}: unsupported persistent id {Describe(pid)}");
        }

        object? Call(object fn, object?[] a)
        {
            if (fn is PyObject po) throw new ClipSharpException($"refusing to load {path}: the pickle calls a {po.Type.FullName} object");
            if (fn is not PyGlobal g) throw new ClipSharpException($"refusing to load {path}: the pickle calls a {Describe(fn)}, which is not a whitelisted function");
            switch (g.FullName)
            {
                case "collections.OrderedDict":
                    return new PyDict();
                case "torch._utils._rebuild_tensor_v2":
                case "torch._utils._rebuild_tensor":
                    if (a.Length < 4 || a[0] is not StorageRef s) throw new ClipSharpException($"{path}: {g.Name} with unexpected arguments");
                    return new TensorSpec(s, ToLong(a[1]), Longs(a[2]), Longs(a[3]));
                case "torch._utils._rebuild_parameter":
                case "torch._utils._rebuild_parameter_with_state":
                    return a.Length > 0 ? a[0] : null;
                case "torch._tensor._rebuild_from_type_v2":
                    if (a.Length < 3 || a[0] is null || a[2] is not PyTuple inner) throw new ClipSharpException($"{path}: {g.Name} with unexpected arguments");
                    return Call(a[0]!, inner.Items);
                case "torch.Size":
                    return a.Length > 0 ? a[0] : new PyTuple([]);
                case "torch.device":
                    return string.Join(":", a.Select(Describe));
                case "_codecs.encode":
                    return a.Length > 0 && a[0] is string str ? Encoding.Latin1.GetBytes(str) : throw new ClipSharpException($"{path}: _codecs.encode with unexpected arguments");
                case "builtins.set":
                case "builtins.frozenset":
                    return a.Length > 0 && a[0] is List<object?> l ? new List<object?>(l) : new List<object?>();
                case "torch.jit._pickle.restore_type_tag":
                case "torch.jit._pickle.build_intlist":
                case "torch.jit._pickle.build_floatlist":
                case "torch.jit._pickle.build_doublelist":
                case "torch.jit._pickle.build_boollist":
                case "torch.jit._pickle.build_tensorlist":
                    return a.Length > 0 ? a[0] : null;
                case "argparse.Namespace":
                    return new PyObject(g, a);
            }
            if (g.Module.StartsWith("__torch__", StringComparison.Ordinal)) return new PyObject(g, a);
            throw new ClipSharpException($"refusing to load {path}: the pickle calls {g.FullName}; ClipSharp only loads tensors and plain containers");
        }

        static long ToLong(object? o) => o is long l ? l : throw new ClipSharpException($"expected an integer, got {Describe(o)}");

        static long[] Longs(object? o) => o switch
        {
            PyTuple t => t.Items.Select(ToLong).ToArray(),
            List<object?> l => l.Select(ToLong).ToArray(),
            _ => throw new ClipSharpException($"expected a tuple of integers, got {Describe(o)}"),
        };

        Tensor LoadStorage(StorageRef s)
        {
            if (_storages.TryGetValue(s.Key, out var cached)) return cached;
            string name = prefix + "data/" + s.Key;
            var entry = zip.GetEntry(name) ?? throw new ClipSharpException($"{path}: the pickle refers to storage record {name}, which the archive does not contain");
            int elem = TensorBytes.ElementSize(s.DType);
            if (entry.Length != s.Numel * elem)
                throw new ClipSharpException($"{path}: record {name} holds {entry.Length} bytes but the pickle declares {s.Numel} elements of {s.DType} ({s.Numel * elem} bytes)");
            var t = TensorBytes.Create([s.Numel], s.DType, dst =>
            {
                try
                {
                    using var stream = entry.Open();
                    stream.ReadExactly(dst);
                }
                catch (Exception ex) when (ex is EndOfStreamException or InvalidDataException or ClipSharpException)
                {
                    throw new ClipSharpException($"{path}: record {name} cannot be read ({ex.Message}); the file is probably truncated or corrupt", ex);
                }
            });
            _storages[s.Key] = t;
            return t;
        }

        public Tensor Materialize(TensorSpec spec, string key)
        {
            if (spec.Size.Length != spec.Stride.Length)
                throw new ClipSharpException($"{path}: tensor '{key}' has {spec.Size.Length} sizes but {spec.Stride.Length} strides");
            var storage = LoadStorage(spec.Storage);
            long numel = 1, last = spec.Offset;
            for (int i = 0; i < spec.Size.Length; i++)
            {
                if (spec.Size[i] < 0 || spec.Stride[i] < 0) throw new ClipSharpException($"{path}: tensor '{key}' has a negative size or stride");
                numel *= spec.Size[i];
                if (spec.Size[i] > 0) last += (spec.Size[i] - 1) * spec.Stride[i];
            }
            if (numel == 0) return torch.empty(spec.Size, spec.Storage.DType).DetachFromDisposeScope();
            if (spec.Offset < 0 || last >= spec.Storage.Numel)
                throw new ClipSharpException($"{path}: tensor '{key}' reaches element {last} of storage {spec.Storage.Key}, which has only {spec.Storage.Numel}");
            using var scope = torch.NewDisposeScope();
            var view = storage.as_strided(spec.Size, spec.Stride, spec.Offset);
            // Always copy: the result owns exactly its own elements, independent of the cached storage and of other views.
            var own = view.is_contiguous() ? view.clone() : view.contiguous();
            return own.DetachFromDisposeScope();
        }
    }
}
