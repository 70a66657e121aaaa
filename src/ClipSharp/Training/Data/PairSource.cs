using System.Text;
using ClipSharp.Data;

namespace ClipSharp.Training.Data;

/// <summary>One indexed set of image–caption pairs and its mixing weight.</summary>
/// <param name="Name">Name for logs (usually the path).</param>
/// <param name="Samples">The pairs, in a fixed order.</param>
/// <param name="Weight">Relative sampling weight.</param>
public sealed record PairSource(string Name, IReadOnlyList<ImageTextSample> Samples, double Weight = 1.0)
{
    /// <summary>Opens a configured source. Relative paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static PairSource Open(SourceSection section, string baseDirectory)
    {
        string path = Path.IsPathRooted(section.Path) ? section.Path : Path.GetFullPath(Path.Combine(baseDirectory, section.Path));
        var samples = section.Type switch
        {
            SourceKind.Csv => TablePairs.Read(path, section.ImageColumn, section.CaptionColumn, ','),
            SourceKind.Tsv => TablePairs.Read(path, section.ImageColumn, section.CaptionColumn, '\t'),
            SourceKind.ImageFolder => FolderPairs.Read(path, section.Templates ?? ["a photo of a {}."]),
            _ => throw new NotSupportedException($"{path}: source type {section.Type} is not supported by the training loader yet"),
        };
        if (samples.Count == 0) throw new InvalidDataException($"{path}: no image–caption pairs");
        return new PairSource(path, samples, section.Weight);
    }
}

/// <summary>Minimal CSV/TSV pair reader for training (header row, quoted fields); rows with an empty path or caption are dropped.</summary>
public static class TablePairs
{
    /// <summary>Reads pairs; image paths resolve against the table's directory.</summary>
    public static List<ImageTextSample> Read(string path, string imageColumn, string captionColumn, char separator)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"table not found: {path}", path);
        var rows = Parse(File.ReadAllText(path), separator);
        if (rows.Count == 0) throw new InvalidDataException($"{path}: empty table");
        var header = rows[0].Select(h => h.Trim()).ToList();
        int Col(string name)
        {
            int i = header.FindIndex(h => h.Equals(name, StringComparison.OrdinalIgnoreCase));
            return i >= 0 ? i : throw new InvalidDataException($"{path}: no column '{name}'; columns: {string.Join(", ", header)}");
        }
        int ic = Col(imageColumn), cc = Col(captionColumn);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var result = new List<ImageTextSample>();
        foreach (var r in rows.Skip(1))
        {
            if (r.Count <= Math.Max(ic, cc)) continue;
            string img = r[ic].Trim(), cap = r[cc].Trim();
            if (img.Length == 0 || cap.Length == 0) continue;
            string full = Path.IsPathRooted(img) ? img : Path.Combine(dir, img);
            result.Add(new ImageTextSample(full, [cap], full));
        }
        return result;
    }

    /// <summary>Splits delimited text into records (RFC 4180 quoting: doubled quotes, embedded separators and newlines).</summary>
    public static List<List<string>> Parse(string text, char sep)
    {
        var rows = new List<List<string>>();
        var row = new List<string>();
        var field = new StringBuilder();
        bool quoted = false, any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char ch = text[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (ch == '"') quoted = false;
                else field.Append(ch);
                continue;
            }
            if (ch == '"') { quoted = true; any = true; }
            else if (ch == sep) { row.Add(field.ToString()); field.Clear(); any = true; }
            else if (ch == '\n' || ch == '\r')
            {
                if (ch == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
                if (any || field.Length > 0) { row.Add(field.ToString()); rows.Add(row); }
                row = []; field.Clear(); any = false;
            }
            else { field.Append(ch); any = true; }
        }
        if (any || field.Length > 0) { row.Add(field.ToString()); rows.Add(row); }
        return rows;
    }
}

/// <summary>One folder per class: every image becomes a pair captioned by each template with the class name.</summary>
public static class FolderPairs
{
    /// <summary>Reads the class folders in ordinal order; '_' in folder names reads as a space.</summary>
    public static List<ImageTextSample> Read(string root, IReadOnlyList<string> templates)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"image folder not found: {root}");
        var result = new List<ImageTextSample>();
        foreach (var dir in Directory.GetDirectories(root).OrderBy(d => d, StringComparer.Ordinal))
        {
            string cls = Path.GetFileName(dir).Replace('_', ' ');
            var captions = templates.Select(t => t.Replace("{}", cls)).ToList();
            foreach (var f in Directory.GetFiles(dir).Where(IsImage).OrderBy(f => f, StringComparer.Ordinal))
                result.Add(new ImageTextSample(f, captions, f));
        }
        return result;
    }

    /// <summary>Lists class names and image files of a class-folder tree (for zero-shot evaluation).</summary>
    public static (List<string> Classes, List<(string Path, int Label)> Images) ReadLabeled(string root, int perClassLimit)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"image folder not found: {root}");
        var classes = new List<string>();
        var images = new List<(string, int)>();
        foreach (var dir in Directory.GetDirectories(root).OrderBy(d => d, StringComparer.Ordinal))
        {
            classes.Add(Path.GetFileName(dir).Replace('_', ' '));
            foreach (var f in Directory.GetFiles(dir).Where(IsImage).OrderBy(f => f, StringComparer.Ordinal).Take(perClassLimit))
                images.Add((f, classes.Count - 1));
        }
        return (classes, images);
    }

    private static bool IsImage(string f) => Path.GetExtension(f).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg" or ".bmp" or ".gif" or ".webp";
}
