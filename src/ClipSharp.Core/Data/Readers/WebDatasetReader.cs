using System.Formats.Tar;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ClipSharp.Data.Readers;

/// <summary>One WebDataset sample: the tar members that share a key, by extension (lower case, without the dot).</summary>
/// <param name="Shard">The tar file it came from.</param>
/// <param name="Key">The member path up to the first dot of its file name.</param>
/// <param name="Members">Extension (e.g. "jpg", "txt", "cls", "json") → member bytes.</param>
public sealed record WebDatasetSample(string Shard, string Key, IReadOnlyDictionary<string, byte[]> Members)
{
    /// <summary>"shard.tar:key", the id used in reports.</summary>
    public string Id => $"{Path.GetFileName(Shard)}:{Key}";
}

/// <summary>
/// WebDataset tar shards read as a stream with <see cref="TarReader"/> (no extraction, no random access): consecutive
/// members with the same key form a sample, e.g. <c>000123.jpg</c> + <c>000123.txt</c> + <c>000123.cls</c>. Images are
/// the .jpg/.jpeg/.png/.webp/.bmp/.gif member; captions come from .txt (one per line) or .json ("caption", "captions",
/// "text"); labels from .cls (an integer or a class name) or .json ("label", "cls"). Shards are read in the order given
/// (a brace pattern expands in numeric order; a directory or glob in ordinal name order). A sample without an image or
/// the needed caption/label, and a corrupt or truncated shard (from the damaged member on), are skipped and reported.
/// </summary>
public sealed class WebDatasetReader : ILabeledImageDataset, IImageTextDataset
{
    static readonly string[] ImageExts = ["jpg", "jpeg", "png", "webp", "bmp", "gif"];
    readonly IReadOnlyList<string>? _givenClassNames;
    IReadOnlyList<string>? _classNames;

    /// <summary>Opens shards.</summary>
    /// <param name="shards">A .tar path, a brace pattern (<c>data-{000..127}.tar</c>, <c>{a,b}.tar</c>), a glob
    /// (<c>dir/*.tar</c>), a directory of .tar files, or several of these separated by spaces or '::'.</param>
    /// <param name="classNames">Class names for labels; null: derived from the labels (integers name themselves,
    /// text labels are sorted ordinally), which costs one extra pass over the .cls/.json members.</param>
    /// <exception cref="FileNotFoundException">No shard matches.</exception>
    public WebDatasetReader(string shards, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(shards);
        Shards = ExpandShards(shards);
        Source = shards;
        _givenClassNames = classNames;
    }

    /// <summary>The shard files, in reading order.</summary>
    public IReadOnlyList<string> Shards { get; }

    /// <inheritdoc/>
    public string Source { get; }

    /// <inheritdoc/>
    public SkipLog Skipped { get; } = new();

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames => _classNames ??= _givenClassNames ?? DeriveClassNames();

    /// <summary>Expands a shard specification into existing files (see the constructor).</summary>
    /// <exception cref="FileNotFoundException">Nothing matches, or an expanded file is missing.</exception>
    public static IReadOnlyList<string> ExpandShards(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var result = new List<string>();
        foreach (var part in spec.Split(["::", " "], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            foreach (var p in ExpandBraces(part))
            {
                if (Directory.Exists(p))
                    result.AddRange(Directory.GetFiles(p, "*.tar").Order(StringComparer.Ordinal));
                else if (p.Contains('*') || p.Contains('?'))
                {
                    var dir = Path.GetDirectoryName(p);
                    dir = string.IsNullOrEmpty(dir) ? "." : dir;
                    if (!Directory.Exists(dir)) throw new FileNotFoundException($"no shards match {p}: directory {dir} does not exist");
                    result.AddRange(Directory.GetFiles(dir, Path.GetFileName(p)).Order(StringComparer.Ordinal));
                }
                else if (File.Exists(p)) result.Add(p);
                else throw new FileNotFoundException($"shard not found: {p}", p);
            }
        }
        if (result.Count == 0) throw new FileNotFoundException($"no WebDataset shards match '{spec}'");
        return result;
    }

    /// <summary>Expands the first <c>{a..b}</c> (zero-padded numeric range) or <c>{x,y}</c> group, recursively.</summary>
    public static IEnumerable<string> ExpandBraces(string pattern)
    {
        int open = pattern.IndexOf('{');
        int close = open < 0 ? -1 : pattern.IndexOf('}', open);
        if (open < 0 || close < 0) { yield return pattern; yield break; }
        string head = pattern[..open], body = pattern[(open + 1)..close], tail = pattern[(close + 1)..];
        IEnumerable<string> options;
        int dots = body.IndexOf("..", StringComparison.Ordinal);
        if (dots > 0 && long.TryParse(body[..dots], NumberStyles.None, CultureInfo.InvariantCulture, out long lo)
                     && long.TryParse(body[(dots + 2)..], NumberStyles.None, CultureInfo.InvariantCulture, out long hi))
        {
            int width = body[..dots].Length;
            long step = lo <= hi ? 1 : -1;
            var list = new List<string>();
            for (long v = lo; ; v += step) { list.Add(v.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0')); if (v == hi) break; }
            options = list;
        }
        else options = body.Split(',');
        foreach (var o in options)
            foreach (var rest in ExpandBraces(tail))
                yield return head + o + rest;
    }

    /// <summary>Splits a member path into (key, extension) the WebDataset way: the extension starts at the first dot of the file name.</summary>
    public static (string Key, string Extension) SplitMemberName(string name)
    {
        int slash = name.LastIndexOf('/');
        int dot = name.IndexOf('.', slash + 1);
        return dot < 0 ? (name, "") : (name[..dot], name[(dot + 1)..].ToLowerInvariant());
    }

    /// <summary>Streams all samples of all shards, in order. Damaged shards are reported in <see cref="Skipped"/>.</summary>
    public IEnumerable<WebDatasetSample> Samples()
    {
        foreach (var shard in Shards)
            foreach (var s in ReadShard(shard))
                yield return s;
    }

    IEnumerable<WebDatasetSample> ReadShard(string shard)
    {
        using var stream = new FileStream(shard, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        using var reader = new TarReader(stream);
        string? key = null;
        var members = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        while (true)
        {
            TarEntry? entry;
            byte[]? data = null;
            string? error = null;
            try
            {
                entry = reader.GetNextEntry(copyData: false);
                if (entry is not null && entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile && entry.DataStream is not null)
                {
                    using var ms = new MemoryStream((int)Math.Min(entry.Length, int.MaxValue));
                    entry.DataStream.CopyTo(ms);
                    if (ms.Length != entry.Length) throw new EndOfStreamException($"member {entry.Name} is truncated");
                    data = ms.ToArray();
                }
            }
            catch (Exception e) when (e is InvalidDataException or ClipSharpException or EndOfStreamException or IOException or FormatException or ArgumentException)
            {
                entry = null;
                error = e.Message;
            }
            if (error is not null)
            {
                Skipped.Add(Path.GetFileName(shard) + (key is null ? "" : $":{key}"), $"damaged tar shard, rest of the shard skipped: {error}");
                yield break; // the sample in progress may be incomplete: drop it
            }
            if (entry is null) break;
            if (data is null) continue; // directories, links, metadata
            var (k, ext) = SplitMemberName(entry.Name);
            if (key is not null && k != key)
            {
                yield return new WebDatasetSample(shard, key, members);
                members = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            }
            key = k;
            members[ext] = data;
        }
        if (key is not null) yield return new WebDatasetSample(shard, key, members);
    }

    static byte[]? ImageOf(WebDatasetSample s)
    {
        foreach (var e in ImageExts) if (s.Members.TryGetValue(e, out var b)) return b;
        return null;
    }

    static JsonElement? JsonOf(WebDatasetSample s)
    {
        if (!s.Members.TryGetValue("json", out var b)) return null;
        try { return JsonDocument.Parse(b).RootElement.Clone(); }
        catch (JsonException) { return null; }
    }

    static string? RawLabel(WebDatasetSample s)
    {
        if (s.Members.TryGetValue("cls", out var b)) return Encoding.UTF8.GetString(b).Trim();
        if (JsonOf(s) is { ValueKind: JsonValueKind.Object } j)
            foreach (var name in new[] { "label", "cls" })
                if (j.TryGetProperty(name, out var v))
                    return v.ValueKind == JsonValueKind.Number ? v.GetRawText() : v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        return null;
    }

    static List<string> CaptionsOf(WebDatasetSample s)
    {
        var caps = new List<string>();
        if (s.Members.TryGetValue("txt", out var b))
            caps.AddRange(Encoding.UTF8.GetString(b).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
        if (caps.Count == 0 && JsonOf(s) is { ValueKind: JsonValueKind.Object } j)
        {
            if (j.TryGetProperty("captions", out var arr) && arr.ValueKind == JsonValueKind.Array)
                caps.AddRange(arr.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!));
            foreach (var name in new[] { "caption", "text" })
                if (caps.Count == 0 && j.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String) caps.Add(v.GetString()!);
        }
        return caps;
    }

    IReadOnlyList<string> DeriveClassNames()
    {
        var labels = new HashSet<string>(StringComparer.Ordinal);
        var quiet = new WebDatasetReader(string.Join("::", Shards), []);
        foreach (var s in quiet.Samples()) if (RawLabel(s) is { Length: > 0 } l) labels.Add(l);
        if (labels.Count > 0 && labels.All(l => int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
        {
            int max = labels.Max(l => int.Parse(l, CultureInfo.InvariantCulture));
            return Enumerable.Range(0, max + 1).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        }
        return labels.Order(StringComparer.Ordinal).ToList();
    }

    /// <inheritdoc/>
    public IEnumerable<LabeledImage> Images()
    {
        var names = ClassNames;
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++) byName.TryAdd(names[i], i);
        foreach (var s in Samples())
        {
            var image = ImageOf(s);
            if (image is null) { Skipped.Add(s.Id, "no image member"); continue; }
            var raw = RawLabel(s);
            int label = raw is null ? -1
                : byName.TryGetValue(raw, out var li) ? li
                : int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n < names.Count ? n : -1;
            if (label < 0) { Skipped.Add(s.Id, raw is null ? "no .cls or json label" : $"label '{raw}' is not one of the {names.Count} classes"); continue; }
            yield return new LabeledImage(s.Id, label, null, image);
        }
    }

    /// <inheritdoc/>
    public IEnumerable<ImageTextSample> Pairs()
    {
        foreach (var s in Samples())
        {
            var image = ImageOf(s);
            if (image is null) { Skipped.Add(s.Id, "no image member"); continue; }
            var caps = CaptionsOf(s);
            if (caps.Count == 0) { Skipped.Add(s.Id, "no .txt or json caption"); continue; }
            yield return new ImageTextSample(s.Id, caps, null, image);
        }
    }
}
