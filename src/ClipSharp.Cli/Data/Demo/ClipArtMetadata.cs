using System.Text.RegularExpressions;
using System.Xml;

namespace ClipSharp.Data.Demo;

/// <summary>Dublin Core metadata found in an OpenClipArt SVG's <c>&lt;metadata&gt;</c> block.</summary>
/// <param name="Title">The work's <c>dc:title</c> (not the publisher's or creator's agent title), or null.</param>
/// <param name="Description">The work's <c>dc:description</c>, or null.</param>
/// <param name="Keywords">The <c>dc:subject/rdf:Bag/rdf:li</c> entries, as written.</param>
internal sealed record ClipArtMetadata(string? Title, string? Description, IReadOnlyList<string> Keywords);

/// <summary>Reads OpenClipArt SVG metadata and decides which titles describe the picture.</summary>
internal static partial class ClipArtMetadataReader
{
    private const string Dc = "http://purl.org/dc/elements/1.1/";
    private const string Rdf = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";

    /// <summary>Reads the metadata of an SVG file; only the part before the drawing is parsed.</summary>
    public static ClipArtMetadata Read(string path)
    {
        using var stream = File.OpenRead(path);
        return Parse(stream);
    }

    /// <summary>
    /// Parses the metadata of an SVG document. The title is the first <c>dc:title</c> that is a direct child of
    /// the <c>cc:Work</c> (agents such as <c>dc:publisher</c> and <c>dc:creator</c> have titles too and are skipped).
    /// Parsing stops at the end of <c>&lt;metadata&gt;</c>.
    /// </summary>
    public static ClipArtMetadata Parse(Stream svg)
    {
        string? title = null, description = null;
        var keywords = new List<string>();
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, XmlResolver = null, IgnoreComments = true };
        using var reader = XmlReader.Create(svg, settings);
        int workDepth = -1;
        bool inSubject = false;
        // ReadText consumes an element and leaves the reader on the next node, so the loop only advances by
        // itself when nothing was consumed (otherwise adjacent elements would be skipped).
        bool consumed = false;
        while (consumed || reader.Read())
        {
            consumed = false;
            if (reader.NodeType == XmlNodeType.EndElement)
            {
                if (reader.LocalName == "metadata") break;
                if (reader.NamespaceURI == Dc && reader.LocalName == "subject") inSubject = false;
                if (reader.Depth == workDepth && reader.LocalName == "Work") workDepth = -1;
                continue;
            }
            if (reader.NodeType != XmlNodeType.Element) continue;
            if (reader.LocalName == "Work" && !reader.IsEmptyElement) { workDepth = reader.Depth; continue; }
            if (reader.NamespaceURI == Dc && reader.LocalName == "subject" && !reader.IsEmptyElement) { inSubject = true; continue; }
            bool directChildOfWork = workDepth >= 0 && reader.Depth == workDepth + 1;
            if (reader.NamespaceURI == Dc && reader.LocalName == "title" && directChildOfWork && title is null)
            {
                consumed = !reader.IsEmptyElement;
                title = ReadText(reader);
            }
            else if (reader.NamespaceURI == Dc && reader.LocalName == "description" && directChildOfWork && description is null)
            {
                consumed = !reader.IsEmptyElement;
                description = ReadText(reader);
            }
            else if (inSubject && reader.NamespaceURI == Rdf && reader.LocalName == "li")
            {
                consumed = !reader.IsEmptyElement;
                var k = ReadText(reader);
                if (k is not null) keywords.Add(k);
            }
        }
        return new ClipArtMetadata(title, description, keywords);
    }

    private static string? ReadText(XmlReader reader)
    {
        if (reader.IsEmptyElement) return null;
        var text = Regex.Replace(reader.ReadElementContentAsString(), @"\s+", " ").Trim();
        return text.Length == 0 ? null : text;
    }

    /// <summary>
    /// True when a title reads as a description of the picture. Rejected: empty or very short titles, titles
    /// without three letters in a row, numbers, "untitled"-like words, file-name-like titles (underscores, file
    /// extensions, a word glued to digits such as <c>guitar1</c>), and collection or theme names
    /// (<c>Part of the Flat Icon Collection…</c>, <c>Clipart by …</c>, <c>… theme</c>, <c>… iconset</c>).
    /// </summary>
    public static bool IsDescriptiveTitle(string? title)
    {
        if (string.IsNullOrWhiteSpace(title)) return false;
        var t = title.Trim();
        if (t.Length < 3 || t.Length > 80) return false;
        if (!ThreeLetters().IsMatch(t)) return false;
        if (t.Contains('_') || t.Contains('/') || t.Contains('\\')) return false;
        if (FileExtension().IsMatch(t)) return false;
        if (GluedDigits().IsMatch(t)) return false;
        var lower = t.ToLowerInvariant();
        string[] junk = ["untitled", "unnamed", "no title", "noname", "new document", "drawing", "image", "layer", "clipart", "clip art", "svg", "test"];
        if (junk.Contains(lower.TrimEnd('.', ' '))) return false;
        string[] collectionWords = ["collection", "clipart by", "part of the", "theme", "iconset", "icon set", "submission", "various cliparts", "gradient"];
        if (collectionWords.Any(w => lower.Contains(w, StringComparison.Ordinal))) return false;
        if (lower.StartsWith("drawing", StringComparison.Ordinal) && lower.Any(char.IsDigit)) return false;
        return true;
    }

    /// <summary>
    /// Cleans a keyword list: drops empty entries and placeholders such as <c>hash(0x86a0bb0)</c>, turns
    /// underscores into spaces, lower-cases, removes duplicates and words already in the title, and keeps at most <paramref name="max"/>.
    /// </summary>
    public static IReadOnlyList<string> CleanKeywords(IEnumerable<string?> keywords, string title, int max = 5)
    {
        var titleWords = new HashSet<string>(Words().Matches(title.ToLowerInvariant()).Select(m => m.Value), StringComparer.Ordinal);
        var result = new List<string>();
        foreach (var raw in keywords)
        {
            if (string.IsNullOrWhiteSpace(raw)) continue;
            var k = raw.Trim().Replace('_', ' ').ToLowerInvariant();
            if (k == "hash" || k.StartsWith("hash(", StringComparison.Ordinal)) continue;
            if (!ThreeLetters().IsMatch(k) || k.Any(char.IsDigit) || k.Length > 30) continue;
            if (titleWords.Contains(k) || result.Contains(k)) continue;
            result.Add(k);
            if (result.Count == max) break;
        }
        return result;
    }

    [GeneratedRegex(@"\p{L}{3}")]
    private static partial Regex ThreeLetters();

    [GeneratedRegex(@"\.(svg|png|jpe?g|gif|bmp|ai|eps|pdf)\b", RegexOptions.IgnoreCase)]
    private static partial Regex FileExtension();

    [GeneratedRegex(@"^\S*\p{L}\d+\S*$|\p{L}\d{2,}|\d+\p{L}+\d")]
    private static partial Regex GluedDigits();

    [GeneratedRegex(@"\p{L}+")]
    private static partial Regex Words();
}
