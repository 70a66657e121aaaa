using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ClipSharp.Data.Demo;

/// <summary>Counts for one image source (a package, or one emoji artist).</summary>
internal sealed class SourceCounts
{
    /// <summary>Images written to the corpus.</summary>
    public int Images { get; set; }

    /// <summary>Image–caption pairs (an image may have several captions).</summary>
    public int Captions { get; set; }

    /// <summary>Source images that could not be read or rendered.</summary>
    public int Unreadable { get; set; }

    /// <summary>Source items left out on purpose (no descriptive title, no glyph for the emoji, …).</summary>
    public int Filtered { get; set; }
}

/// <summary>One split file and its size.</summary>
internal sealed class SplitInfo
{
    /// <summary>CSV file, relative to the corpus folder.</summary>
    public string File { get; set; } = "";

    /// <summary>Data rows in the CSV (pairs for caption splits, images for classification splits).</summary>
    public int Rows { get; set; }

    /// <summary>Distinct images.</summary>
    public int Images { get; set; }

    /// <summary>Class-name list (one per line, line number = label index), for classification splits.</summary>
    public string? ClassesFile { get; set; }

    /// <summary>Number of classes, for classification splits.</summary>
    public int? Classes { get; set; }

    /// <summary>What the split is for.</summary>
    public string Description { get; set; } = "";
}

/// <summary>A held-out emoji subgroup.</summary>
/// <param name="Group">Emoji group.</param>
/// <param name="Subgroup">Emoji subgroup.</param>
/// <param name="Concepts">Concepts (emoji) in it.</param>
internal sealed record HeldOutSubgroup(string Group, string Subgroup, int Concepts);

/// <summary>The <c>manifest.json</c> of a demo corpus: where everything came from and what was written.</summary>
internal sealed class CorpusManifest
{
    /// <summary>Manifest format version.</summary>
    public int FormatVersion { get; set; } = 1;

    /// <summary>Seed of the deterministic choices (held-out subgroups, validation split).</summary>
    public int Seed { get; set; }

    /// <summary>When the build that wrote the corpus finished (UTC).</summary>
    public DateTimeOffset BuiltAt { get; set; }

    /// <summary>Wall-clock seconds of that build.</summary>
    public double BuildSeconds { get; set; }

    /// <summary>Image sizes: emoji and Fashion-MNIST side, and the side of clip art and stamps.</summary>
    public Dictionary<string, int> ImageSizes { get; set; } = [];

    /// <summary>Emoji artists used for training (and for the zero-shot split).</summary>
    public List<string> TrainArtists { get; set; } = [];

    /// <summary>Emoji artists never seen in training (distribution-shift split).</summary>
    public List<string> ShiftArtists { get; set; } = [];

    /// <summary>Every source package with version and licence.</summary>
    public List<SourcePackage> Packages { get; set; } = [];

    /// <summary>Counts per source.</summary>
    public SortedDictionary<string, SourceCounts> Sources { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The splits by name.</summary>
    public SortedDictionary<string, SplitInfo> Splits { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Emoji subgroups held out of training for the zero-shot split.</summary>
    public List<HeldOutSubgroup> HeldOutSubgroups { get; set; } = [];

    /// <summary>Serializer settings: indented, snake_case names.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The manifest as JSON text.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Writes the manifest atomically (temporary file, then rename).</summary>
    public void Write(string path) => CorpusImages.WriteAtomic(path, Encoding.UTF8.GetBytes(ToJson() + "\n"));

    /// <summary>Reads a manifest written by <see cref="Write"/>.</summary>
    public static CorpusManifest Read(string path) =>
        JsonSerializer.Deserialize<CorpusManifest>(File.ReadAllText(path), JsonOptions) ?? throw new ClipSharpException($"{path} is empty");
}

/// <summary>Minimal RFC 4180 CSV writing and reading (fields with commas, quotes or line breaks are quoted).</summary>
internal static class Csv
{
    /// <summary>One CSV line (without the line break).</summary>
    public static string Line(params string[] fields) => string.Join(',', fields.Select(Quote));

    /// <summary>Quotes a field when needed.</summary>
    public static string Quote(string field) =>
        field.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : field;

    /// <summary>Writes a header and rows atomically; returns the number of data rows.</summary>
    public static int Write(string path, string[] header, IEnumerable<string[]> rows)
    {
        var sb = new StringBuilder();
        sb.Append(Line(header)).Append('\n');
        int n = 0;
        foreach (var r in rows) { sb.Append(Line(r)).Append('\n'); n++; }
        CorpusImages.WriteAtomic(path, Encoding.UTF8.GetBytes(sb.ToString()));
        return n;
    }

    /// <summary>Reads all records of a CSV text (header included).</summary>
    public static List<string[]> Parse(string text)
    {
        var rows = new List<string[]>();
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false, any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
                continue;
            }
            switch (c)
            {
                case '"': quoted = true; any = true; break;
                case ',': fields.Add(field.ToString()); field.Clear(); any = true; break;
                case '\r': break;
                case '\n':
                    fields.Add(field.ToString()); field.Clear();
                    rows.Add([.. fields]); fields.Clear(); any = false;
                    break;
                default: field.Append(c); any = true; break;
            }
        }
        if (any || field.Length > 0) { fields.Add(field.ToString()); rows.Add([.. fields]); }
        return rows;
    }
}
