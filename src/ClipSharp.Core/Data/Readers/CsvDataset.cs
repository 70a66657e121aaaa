using System.Text;

namespace ClipSharp.Data.Readers;

/// <summary>Which columns of a CSV/TSV table (or which fields of WebDataset JSON) hold what.</summary>
public sealed record TableColumns
{
    /// <summary>Column with the image path (relative paths are resolved against the table's directory).
    /// Null: the first of image, filepath, path, file, filename, image_path.</summary>
    public string? ImageColumn { get; init; }

    /// <summary>Column with the class label (a class name or an integer index). Null: the first of label, class, category if present.</summary>
    public string? LabelColumn { get; init; }

    /// <summary>Column with a caption. Null: the first of caption, text, title, sentence if present.</summary>
    public string? CaptionColumn { get; init; }

    /// <summary>Field separator; null: tab for .tsv, otherwise comma.</summary>
    public char? Delimiter { get; init; }

    /// <summary>Class names, in label order. Null: integer labels use their own value as the name; text labels are sorted ordinally.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Directory relative image paths are resolved against; null: the table's directory.</summary>
    public string? BaseDirectory { get; init; }
}

/// <summary>
/// A CSV or TSV table with a header row: one row per image (labelled data) or per image–caption pair. Rows that name the
/// same image are merged into one sample with several captions, in file order. Rows whose image file does not exist
/// are skipped and reported. Quoted fields (RFC 4180, with doubled quotes and embedded newlines) are supported.
/// </summary>
public sealed class CsvDataset : ILabeledImageDataset, IImageTextDataset
{
    readonly List<(string Path, List<string> Captions, int Label)> _rows = [];

    /// <summary>Reads the table (the images themselves are read later).</summary>
    /// <exception cref="FileNotFoundException">The table does not exist.</exception>
    /// <exception cref="ClipSharpException">Missing header or columns, or an unknown class name.</exception>
    public CsvDataset(string path, TableColumns? columns = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"table not found: {path}", path);
        columns ??= new TableColumns();
        Source = path;
        char sep = columns.Delimiter ?? (Path.GetExtension(path).Equals(".tsv", StringComparison.OrdinalIgnoreCase) ? '\t' : ',');
        var records = Parse(File.ReadAllText(path), sep);
        if (records.Count == 0) throw new ClipSharpException($"{path}: empty table (a header row is required)");
        var header = records[0].Select(h => h.Trim()).ToList();

        int Find(string? wanted, string what, bool required, params string[] fallbacks)
        {
            if (wanted is not null)
            {
                int i = header.FindIndex(h => h.Equals(wanted, StringComparison.OrdinalIgnoreCase));
                if (i < 0) throw new ClipSharpException($"{path}: no column named '{wanted}' for the {what}; columns are: {string.Join(", ", header)}");
                return i;
            }
            foreach (var f in fallbacks)
            {
                int i = header.FindIndex(h => h.Equals(f, StringComparison.OrdinalIgnoreCase));
                if (i >= 0) return i;
            }
            if (required) throw new ClipSharpException($"{path}: no {what} column (tried {string.Join(", ", fallbacks)}); columns are: {string.Join(", ", header)}. Name it explicitly.");
            return -1;
        }

        int imageCol = Find(columns.ImageColumn, "image path", true, "image", "filepath", "path", "file", "filename", "image_path");
        int labelCol = Find(columns.LabelColumn, "label", false, "label", "class", "category");
        int captionCol = Find(columns.CaptionColumn, "caption", false, "caption", "text", "title", "sentence");
        ImageColumn = header[imageCol];
        LabelColumn = labelCol >= 0 ? header[labelCol] : null;
        CaptionColumn = captionCol >= 0 ? header[captionCol] : null;
        string baseDir = columns.BaseDirectory ?? Path.GetDirectoryName(Path.GetFullPath(path))!;

        var rawLabels = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int r = 1; r < records.Count; r++)
        {
            var rec = records[r];
            if (rec.Count == 1 && rec[0].Length == 0) continue; // blank line
            string Cell(int c) => c >= 0 && c < rec.Count ? rec[c] : "";
            var rel = Cell(imageCol).Trim();
            string id = $"{Path.GetFileName(path)}:{r + 1}";
            if (rel.Length == 0) { Skipped.Add(id, "empty image path"); continue; }
            var full = Path.IsPathRooted(rel) ? rel : Path.GetFullPath(Path.Combine(baseDir, rel));
            if (!File.Exists(full)) { Skipped.Add(full, $"image file not found (row {r + 1})"); continue; }
            var caption = Cell(captionCol);
            if (index.TryGetValue(full, out int existing))
            {
                if (captionCol >= 0 && caption.Length > 0) _rows[existing].Captions.Add(caption);
                continue;
            }
            index[full] = _rows.Count;
            _rows.Add((full, captionCol >= 0 && caption.Length > 0 ? [caption] : [], -1));
            rawLabels.Add(Cell(labelCol).Trim());
        }

        if (labelCol >= 0)
        {
            IReadOnlyList<string> names;
            Dictionary<string, int> byName;
            bool allInts = rawLabels.Count > 0 && rawLabels.All(l => int.TryParse(l, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _));
            if (columns.ClassNames is not null)
            {
                names = columns.ClassNames;
                byName = names.Select((n, i) => (n, i)).GroupBy(p => p.n, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().i, StringComparer.Ordinal);
            }
            else if (allInts)
            {
                int max = rawLabels.Max(l => int.Parse(l, System.Globalization.CultureInfo.InvariantCulture));
                names = Enumerable.Range(0, max + 1).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
                byName = [];
            }
            else
            {
                names = rawLabels.Where(l => l.Length > 0).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
                byName = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
            }
            for (int i = 0; i < _rows.Count; i++)
            {
                var l = rawLabels[i];
                int label = byName.TryGetValue(l, out var li) ? li
                    : int.TryParse(l, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n < names.Count ? n : -1;
                if (label < 0 && l.Length > 0 && columns.ClassNames is not null)
                    throw new ClipSharpException($"{path}: label '{l}' of {_rows[i].Path} is neither one of the {names.Count} class names nor an index below {names.Count}");
                _rows[i] = (_rows[i].Path, _rows[i].Captions, label);
            }
            ClassNames = names;
        }
        else ClassNames = [];
    }

    /// <inheritdoc/>
    public string Source { get; }

    /// <summary>The column the image paths were read from.</summary>
    public string ImageColumn { get; }

    /// <summary>The label column, if any.</summary>
    public string? LabelColumn { get; }

    /// <summary>The caption column, if any.</summary>
    public string? CaptionColumn { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames { get; }

    /// <inheritdoc/>
    public SkipLog Skipped { get; } = new();

    /// <summary>Distinct images in the table.</summary>
    public int Count => _rows.Count;

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">The table has no label column.</exception>
    public IEnumerable<LabeledImage> Images()
    {
        if (LabelColumn is null) throw new InvalidOperationException($"{Source}: the table has no label column (name one with the label column option)");
        foreach (var r in _rows)
        {
            if (r.Label < 0) { Skipped.Add(r.Path, "no label"); continue; }
            yield return new LabeledImage(r.Path, r.Label, r.Path);
        }
    }

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">The table has neither a caption nor a label column.</exception>
    public IEnumerable<ImageTextSample> Pairs()
    {
        if (CaptionColumn is null && LabelColumn is null) throw new InvalidOperationException($"{Source}: the table has no caption column");
        foreach (var r in _rows)
        {
            IReadOnlyList<string> caps = r.Captions.Count > 0 ? r.Captions : r.Label >= 0 ? [ClassNames[r.Label]] : [];
            if (caps.Count == 0) { Skipped.Add(r.Path, "no caption"); continue; }
            yield return new ImageTextSample(r.Path, caps, r.Path);
        }
    }

    /// <summary>Splits delimited text into records of fields (RFC 4180 quoting).</summary>
    public static List<List<string>> Parse(string text, char delimiter)
    {
        ArgumentNullException.ThrowIfNull(text);
        var records = new List<List<string>>();
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false, any = false;
        int i = 0;
        if (text.Length > 0 && text[0] == '\uFEFF') i = 1;
        for (; i < text.Length; i++)
        {
            char ch = text[i];
            any = true;
            if (quoted)
            {
                if (ch == '"')
                {
                    if (i + 1 < text.Length && text[i + 1] == '"') { sb.Append('"'); i++; }
                    else quoted = false;
                }
                else sb.Append(ch);
            }
            else if (ch == '"' && sb.Length == 0) quoted = true;
            else if (ch == delimiter) { fields.Add(sb.ToString()); sb.Clear(); }
            else if (ch == '\n' || ch == '\r')
            {
                if (ch == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
                fields.Add(sb.ToString()); sb.Clear();
                records.Add(fields); fields = [];
                any = false;
            }
            else sb.Append(ch);
        }
        if (any || sb.Length > 0 || fields.Count > 0) { fields.Add(sb.ToString()); records.Add(fields); }
        return records;
    }
}
