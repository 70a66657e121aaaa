using System.Formats.Tar;
using System.Text;
using System.Text.Json;
using ClipSharp.Data;
using ClipSharp.Data.Readers;

namespace ClipSharp.Training.Data;

/// <summary>
/// WebDataset shards for training without holding the images in memory: opening a source walks each shard's tar
/// headers once, keeping the captions (.txt, or .json "captions"/"caption"/"text") and, for the image member, only
/// its byte range in the shard. Decode workers read each image from its shard on demand (their own file handle per
/// read), so memory is independent of corpus size, and work is split by sample rather than by shard: any number
/// of workers share any number of shards, with no worker left waiting on a shard that does not exist.
/// A damaged shard contributes the samples before the damage; the rest of it is counted as skipped.
/// </summary>
internal static class WebDatasetShards
{
    private static readonly string[] ImageExtensions = ["jpg", "jpeg", "png", "webp", "bmp", "gif"];

    /// <summary>Where an image lives inside a shard.</summary>
    /// <param name="Shard">Tar file.</param>
    /// <param name="Offset">Start of the member's data in the file.</param>
    /// <param name="Length">Member size in bytes.</param>
    internal sealed record ImageRange(string Shard, long Offset, int Length);

    /// <summary>Indexes the shards named by <paramref name="spec"/> (a .tar file, a directory, a brace pattern or a "::" list).</summary>
    public static PairSource Open(string spec, double weight = 1.0)
    {
        var samples = new List<ImageTextSample>();
        var ranges = new Dictionary<string, ImageRange>(StringComparer.Ordinal);
        int skipped = 0;
        foreach (var shard in WebDatasetReader.ExpandShards(spec))
            skipped += IndexShard(shard, samples, ranges);
        if (samples.Count == 0) throw new ClipSharpException($"{spec}: no image–caption pairs");
        return new PairSource(spec, samples, weight)
        {
            SkippedWhenOpening = skipped,
            ReadImage = s => ranges.TryGetValue(s.Id, out var r) ? Read(r) : throw new ClipSharpException("no image member"),
        };
    }

    /// <summary>Reads one image member from its shard.</summary>
    public static byte[] Read(ImageRange range)
    {
        using var f = new FileStream(range.Shard, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        var buffer = new byte[range.Length];
        f.Position = range.Offset;
        f.ReadExactly(buffer);
        return buffer;
    }

    private static int IndexShard(string shard, List<ImageTextSample> samples, Dictionary<string, ImageRange> ranges)
    {
        int skipped = 0;
        string? key = null;
        ImageRange? image = null;
        List<string> captions = [], jsonCaptions = [];
        string name = Path.GetFileName(shard);
        void Flush()
        {
            if (key is null) return;
            string id = $"{name}:{key}";
            if (captions.Count == 0) captions.AddRange(jsonCaptions); // .txt wins over .json
            if (image is null || captions.Count == 0) skipped++;
            else
            {
                samples.Add(new ImageTextSample(id, captions.ToList()));
                ranges[id] = image;
            }
            image = null;
            captions.Clear();
            jsonCaptions.Clear();
        }
        try
        {
            using var stream = new FileStream(shard, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            using var reader = new TarReader(stream);
            while (reader.GetNextEntry(copyData: false) is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null) continue;
                var (k, ext) = WebDatasetReader.SplitMemberName(entry.Name);
                if (k != key) { Flush(); key = k; }
                if (ImageExtensions.Contains(ext) && image is null)
                {
                    if (entry.DataOffset < 0 || entry.Length > int.MaxValue || entry.DataOffset + entry.Length > stream.Length)
                        throw new EndOfStreamException($"member {entry.Name} is truncated");
                    image = new ImageRange(shard, entry.DataOffset, (int)entry.Length);
                }
                else if (ext is "txt" or "json")
                {
                    using var ms = new MemoryStream();
                    entry.DataStream.CopyTo(ms);
                    (ext == "txt" ? captions : jsonCaptions).AddRange(ext == "txt" ? TextCaptions(ms.ToArray()) : JsonCaptions(ms.ToArray()));
                }
            }
            Flush();
        }
        catch (Exception e) when (e is InvalidDataException or ClipSharpException or EndOfStreamException or IOException or FormatException or ArgumentException)
        {
            skipped++; // the sample in progress may be incomplete: drop it, keep what came before
        }
        return skipped;
    }

    private static IEnumerable<string> TextCaptions(byte[] b) =>
        Encoding.UTF8.GetString(b).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0);

    private static List<string> JsonCaptions(byte[] b)
    {
        var caps = new List<string>();
        try
        {
            var j = JsonDocument.Parse(b).RootElement;
            if (j.ValueKind != JsonValueKind.Object) return caps;
            if (j.TryGetProperty("captions", out var arr) && arr.ValueKind == JsonValueKind.Array)
                caps.AddRange(arr.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!));
            foreach (var n in new[] { "caption", "text" })
                if (caps.Count == 0 && j.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.String) caps.Add(v.GetString()!);
        }
        catch (JsonException) { }
        return caps;
    }
}
