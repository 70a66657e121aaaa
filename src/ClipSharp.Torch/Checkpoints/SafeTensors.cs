using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Checkpoints;

/// <summary>
/// Reader and writer for the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
/// (name → dtype, shape, data_offsets, plus an optional <c>__metadata__</c> string map) padded with spaces to a
/// multiple of 8, then the raw little-endian row-major tensor bytes.
/// </summary>
public static class SafeTensors
{
    /// <summary>Largest header accepted (the format's reference implementation uses the same 100 MB bound).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    const string MetadataKey = "__metadata__";

    /// <summary>Test hook: called after each tensor's bytes were written during <see cref="Save"/>.</summary>
    internal static Action<string>? AfterTensorWritten;

    /// <summary>Maps a safetensors dtype string to a TorchSharp scalar type.</summary>
    public static ScalarType ParseDType(string dtype) => dtype switch
    {
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new NotSupportedException($"safetensors dtype '{dtype}' is not supported (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)"),
    };

    /// <summary>Maps a TorchSharp scalar type to its safetensors dtype string.</summary>
    public static string FormatDType(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"tensor dtype {dtype} cannot be stored in safetensors by ClipSharp"),
    };

    /// <summary>One tensor entry of a parsed header.</summary>
    /// <param name="Name">Tensor name.</param>
    /// <param name="DType">safetensors dtype string.</param>
    /// <param name="Shape">Shape (empty for a scalar).</param>
    /// <param name="Begin">First byte, relative to the data section.</param>
    /// <param name="End">One past the last byte, relative to the data section.</param>
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    /// <summary>A parsed and validated header.</summary>
    /// <param name="Entries">Tensor entries in header order.</param>
    /// <param name="Metadata">The <c>__metadata__</c> map (empty when absent).</param>
    /// <param name="DataStart">Absolute file offset of the data section (8 + header length).</param>
    public sealed record Header(IReadOnlyList<Entry> Entries, IReadOnlyDictionary<string, string> Metadata, long DataStart);

    /// <summary>Reads and strictly validates only the header of a safetensors file (no tensor data is read).</summary>
    /// <exception cref="ClipSharpException">The file is not a well-formed safetensors file; the message names it.</exception>
    public static Header ReadHeader(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        return ReadHeader(fs, path);
    }

    static Header ReadHeader(FileStream fs, string path)
    {
        ClipSharpException Bad(string what) => new($"{path}: not a valid safetensors file: {what}");
        long fileLen = fs.Length;
        if (fileLen < 8) throw Bad($"the file is {fileLen} bytes, too short for the 8-byte header length");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (n < 2 || n > MaxHeaderBytes) throw Bad($"header length {n} is not plausible (must be between 2 and {MaxHeaderBytes} bytes)");
        if ((long)n > fileLen - 8) throw Bad($"header length {n} runs past the end of the file ({fileLen} bytes); the file is probably truncated");
        var json = new byte[n];
        fs.ReadExactly(json);
        long dataStart = 8 + (long)n;
        long dataLen = fileLen - dataStart;

        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw Bad($"the header is not well-formed JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("the header is not a JSON object");
            var entries = new List<Entry>();
            var meta = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name)) throw Bad($"duplicate key '{prop.Name}' in the header");
                if (prop.Name == MetadataKey)
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad("__metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad($"__metadata__ value '{m.Name}' is not a string");
                        meta[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(prop, Bad));
            }

            // Offsets must tile [0, dataLen) exactly: contiguous, no gaps, no overlaps, nothing after the last tensor.
            long pos = 0;
            foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
            {
                if (e.Begin != pos)
                    throw Bad(e.Begin > pos
                        ? $"gap before tensor '{e.Name}' (data_offsets start at {e.Begin}, expected {pos})"
                        : $"tensor '{e.Name}' overlaps the previous tensor (data_offsets start at {e.Begin}, expected {pos})");
                pos = e.End;
            }
            if (pos != dataLen)
                throw Bad(pos > dataLen
                    ? $"the tensors need {pos} data bytes but only {dataLen} follow the header; the file is truncated"
                    : $"{dataLen - pos} unexpected bytes follow the last tensor");
            return new Header(entries, meta, dataStart);
        }
    }

    static Entry ParseEntry(JsonProperty prop, Func<string, ClipSharpException> bad)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw bad($"entry '{name}' is not an object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw bad($"entry '{name}' has no string 'dtype'");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw bad($"entry '{name}' has no 'shape' list");
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw bad($"entry '{name}' has no 'data_offsets' pair");
        string dtype = dt.GetString()!;
        int elem;
        try { elem = TensorBytes.ElementSize(ParseDType(dtype)); }
        catch (NotSupportedException e) { throw bad($"entry '{name}': {e.Message}"); }
        var shape = new long[sh.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0) throw bad($"entry '{name}' has an invalid shape dimension {d}");
            shape[i++] = dim;
            try { count = checked(count * dim); } catch (OverflowException) { throw bad($"entry '{name}' has an absurd shape"); }
        }
        long[] o = new long[2];
        i = 0;
        foreach (var d in off.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var x) || x < 0) throw bad($"entry '{name}' has an invalid data offset {d}");
            o[i++] = x;
        }
        if (o[1] < o[0]) throw bad($"entry '{name}' has data_offsets [{o[0]}, {o[1]}] with end before begin");
        long expected;
        try { expected = checked(count * elem); } catch (OverflowException) { throw bad($"entry '{name}' has an absurd shape"); }
        if (o[1] - o[0] != expected)
            throw bad($"entry '{name}' spans {o[1] - o[0]} bytes but shape [{string.Join(",", shape)}] of {dtype} needs {expected}");
        return new Entry(name, dtype, shape, o[0], o[1]);
    }

    /// <summary>Loads every tensor of a safetensors file into a new <see cref="StateDict"/>, in header order.</summary>
    /// <exception cref="ClipSharpException">The file is malformed or truncated; the message names it and the problem.</exception>
    public static StateDict Load(string path) => Load(path, out _);

    /// <summary>Loads every tensor and also returns the <c>__metadata__</c> map.</summary>
    public static StateDict Load(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors loading needs a little-endian host");
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var header = ReadHeader(fs, path);
        metadata = header.Metadata;
        var sd = new StateDict();
        try
        {
            foreach (var e in header.Entries)
            {
                var t = TensorBytes.Create(e.Shape, ParseDType(e.DType), dst =>
                {
                    long at = header.DataStart + e.Begin;
                    while (!dst.IsEmpty)
                    {
                        int r = RandomAccess.Read(fs.SafeFileHandle, dst, at);
                        if (r <= 0) throw new ClipSharpException($"{path}: unexpected end of file while reading tensor '{e.Name}'");
                        dst = dst[r..];
                        at += r;
                    }
                });
                sd.Add(e.Name, t);
            }
            return sd;
        }
        catch
        {
            sd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> atomically: the file is written to a temporary
    /// file in the same folder and renamed over the destination only when complete, so a failure never leaves a
    /// partial file. The JSON lists tensors in the dictionary's order; the data section places wider dtypes first
    /// so every element is aligned to its own size. The header is padded with spaces to a multiple of 8.
    /// </summary>
    public static void Save(string path, StateDict tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors saving needs a little-endian host");
        var items = tensors.ToList();
        // Validate dtypes and compute the layout before touching the disk.
        var dtypes = items.Select(kv => FormatDType(kv.Value.dtype)).ToArray();
        var layoutOrder = Enumerable.Range(0, items.Count)
            .OrderByDescending(i => TensorBytes.ElementSize(items[i].Value.dtype)).ThenBy(i => i).ToArray();
        var begin = new long[items.Count];
        var end = new long[items.Count];
        long pos = 0;
        foreach (int i in layoutOrder)
        {
            begin[i] = pos;
            pos += items[i].Value.numel() * TensorBytes.ElementSize(items[i].Value.dtype);
            end[i] = pos;
        }

        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            for (int i = 0; i < items.Count; i++)
            {
                w.WriteStartObject(items[i].Key);
                w.WriteString("dtype", dtypes[i]);
                w.WriteStartArray("shape");
                foreach (var d in items[i].Value.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(begin[i]);
                w.WriteNumberValue(end[i]);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - ms.Length % 8) % 8);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        var headerBytes = ms.ToArray();

        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerBytes.Length);
                fs.Write(len);
                fs.Write(headerBytes);
                foreach (int i in layoutOrder)
                {
                    var (name, t) = items[i];
                    using var scope = torch.NewDisposeScope();
                    var c = t.device_type == DeviceType.CPU && t.is_contiguous() ? t : t.cpu().contiguous();
                    fs.Write(TensorBytes.Span(c));
                    AfterTensorWritten?.Invoke(name);
                }
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
