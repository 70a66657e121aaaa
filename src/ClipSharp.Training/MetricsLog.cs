using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ClipSharp.Training;

/// <summary>Appends scalar metrics to <c>metrics.jsonl</c> (one JSON object per line) and optionally to a TensorBoard event file.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter jsonl;
    private readonly TensorBoardWriter? tensorboard;

    /// <summary>
    /// Opens (appending) the logs in <paramref name="runDirectory"/>. With <paramref name="continueFromStep"/> the
    /// JSONL records after that step (written by a run that was killed after its last checkpoint, and about to be
    /// redone) and any line torn by the kill are dropped first, so the file reads as one uninterrupted run.
    /// </summary>
    public MetricsLog(string runDirectory, bool tensorboard, long? continueFromStep = null)
    {
        Directory.CreateDirectory(runDirectory);
        JsonlPath = Path.Combine(runDirectory, "metrics.jsonl");
        if (continueFromStep is { } from && File.Exists(JsonlPath)) DropAfter(JsonlPath, from);
        jsonl = new StreamWriter(new FileStream(JsonlPath, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
        if (tensorboard) this.tensorboard = new TensorBoardWriter(Path.Combine(runDirectory, "tensorboard"));
    }

    /// <summary>The JSONL file.</summary>
    public string JsonlPath { get; }

    /// <summary>Writes one record: the step, a wall-clock time and the given scalars.</summary>
    public void Write(long step, IReadOnlyDictionary<string, double> scalars)
    {
        var sb = new StringBuilder();
        sb.Append("{\"step\":").Append(step.ToString(CultureInfo.InvariantCulture));
        sb.Append(",\"time\":").Append((DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0).ToString("R", CultureInfo.InvariantCulture));
        foreach (var (k, v) in scalars)
        {
            sb.Append(',').Append(JsonSerializer.Serialize(k)).Append(':');
            sb.Append(double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null");
        }
        sb.Append('}');
        jsonl.WriteLine(sb.ToString());
        jsonl.Flush();
        if (tensorboard is not null)
            foreach (var (k, v) in scalars) tensorboard.Scalar(k, step, (float)v);
        tensorboard?.Flush();
    }

    private static void DropAfter(string path, long step)
    {
        var kept = new StringBuilder();
        bool changed = false;
        foreach (var line in File.ReadLines(path))
        {
            bool keep;
            try
            {
                using var doc = JsonDocument.Parse(line);
                keep = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("step", out var s) &&
                       s.TryGetInt64(out long v) && v <= step;
            }
            catch (JsonException) { keep = false; }
            if (keep) kept.Append(line).Append('\n');
            else changed = true;
        }
        if (changed) AtomicFile.WriteAllText(path, kept.ToString());
    }

    /// <summary>
    /// Reads a metrics.jsonl file back: one dictionary per line (null values skipped). A resumed run appends after
    /// the records of the steps it redoes, so when the step goes backwards the records from that step on are
    /// replaced by the later ones; a line torn by a killed writer is skipped.
    /// </summary>
    public static List<Dictionary<string, double>> Read(string path)
    {
        var rows = new List<Dictionary<string, double>>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            Dictionary<string, double> row;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) continue;
                row = [];
                foreach (var p in doc.RootElement.EnumerateObject())
                    if (p.Value.ValueKind == JsonValueKind.Number) row[p.Name] = p.Value.GetDouble();
            }
            catch (JsonException) { continue; }
            if (row.TryGetValue("step", out double step) && rows.Count > 0 && rows[^1].TryGetValue("step", out double previous) && step < previous)
                rows.RemoveAll(r => r.TryGetValue("step", out double s) && s >= step);
            rows.Add(row);
        }
        return rows;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        jsonl.Dispose();
        tensorboard?.Dispose();
    }
}

/// <summary>
/// Writes TensorBoard event files (<c>events.out.tfevents.*</c>): TFRecord framing (little-endian uint64 length,
/// masked CRC-32C of the length, the payload, masked CRC-32C of the payload) around hand-encoded <c>Event</c>
/// protocol buffers — wall_time (1, double), step (2, int64), file_version (3, string) on the first record and a
/// <c>Summary</c> (5) holding one <c>Value</c> with tag (1, string) and simple_value (2, float).
/// </summary>
internal sealed class TensorBoardWriter : IDisposable
{
    private readonly FileStream file;

    /// <summary>Creates a new event file in <paramref name="directory"/>.</summary>
    public TensorBoardWriter(string directory)
    {
        Directory.CreateDirectory(directory);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Path = System.IO.Path.Combine(directory, $"events.out.tfevents.{now}.{Environment.MachineName}.{Environment.ProcessId}");
        file = new FileStream(Path, FileMode.Create, FileAccess.Write, FileShare.Read);
        var ev = new List<byte>();
        WallTime(ev);
        Tag(ev, 3, 2); Bytes(ev, Encoding.UTF8.GetBytes("brain.Event:2"));
        Record(ev.ToArray());
    }

    /// <summary>The event file.</summary>
    public string Path { get; }

    /// <summary>Appends one scalar summary.</summary>
    public void Scalar(string tag, long step, float value)
    {
        var val = new List<byte>();
        Tag(val, 1, 2); Bytes(val, Encoding.UTF8.GetBytes(tag));
        Tag(val, 2, 5); Span<byte> f = stackalloc byte[4]; BinaryPrimitives.WriteSingleLittleEndian(f, value); val.AddRange(f.ToArray());
        var summary = new List<byte>();
        Tag(summary, 1, 2); Bytes(summary, val.ToArray());
        var ev = new List<byte>();
        WallTime(ev);
        Tag(ev, 2, 0); Varint(ev, (ulong)step);
        Tag(ev, 5, 2); Bytes(ev, summary.ToArray());
        Record(ev.ToArray());
    }

    /// <summary>Flushes buffered records to the file.</summary>
    public void Flush() => file.Flush();

    private void Record(byte[] payload)
    {
        Span<byte> head = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(head, (ulong)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head[8..], Crc32C.Masked(head[..8]));
        file.Write(head);
        file.Write(payload);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, Crc32C.Masked(payload));
        file.Write(tail);
    }

    private static void WallTime(List<byte> b)
    {
        Tag(b, 1, 1);
        Span<byte> d = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(d, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        b.AddRange(d.ToArray());
    }

    private static void Tag(List<byte> b, int field, int wireType) => Varint(b, (ulong)(field << 3 | wireType));

    private static void Bytes(List<byte> b, byte[] data) { Varint(b, (ulong)data.Length); b.AddRange(data); }

    private static void Varint(List<byte> b, ulong v)
    {
        while (v >= 0x80) { b.Add((byte)(v | 0x80)); v >>= 7; }
        b.Add((byte)v);
    }

    /// <inheritdoc />
    public void Dispose() => file.Dispose();
}

/// <summary>CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord's masking of it.</summary>
internal static class Crc32C
{
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte x in data) c = Table[(c ^ x) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>TFRecord's masked CRC: rotate right by 15 bits and add 0xa282ead8.</summary>
    public static uint Masked(ReadOnlySpan<byte> data)
    {
        uint c = Compute(data);
        return unchecked(((c >> 15) | (c << 17)) + 0xa282ead8u);
    }
}
