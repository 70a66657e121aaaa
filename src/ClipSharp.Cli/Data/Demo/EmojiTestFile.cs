using System.Globalization;
using System.Text;

namespace ClipSharp.Data.Demo;

/// <summary>One line of Unicode's <c>emoji-test.txt</c>, with the group and subgroup it was listed under.</summary>
/// <param name="Codepoints">The code points of the sequence, in order.</param>
/// <param name="Status">Qualification status: <c>fully-qualified</c>, <c>minimally-qualified</c>, <c>unqualified</c> or <c>component</c>.</param>
/// <param name="Name">The CLDR short name, e.g. <c>grinning face</c> or <c>flag: Germany</c>.</param>
/// <param name="Group">The group heading, e.g. <c>Smileys &amp; Emotion</c>.</param>
/// <param name="Subgroup">The subgroup heading, e.g. <c>face-smiling</c>.</param>
internal sealed record EmojiEntry(IReadOnlyList<int> Codepoints, string Status, string Name, string Group, string Subgroup)
{
    /// <summary>The emoji as a string.</summary>
    public string Text
    {
        get
        {
            var sb = new StringBuilder();
            foreach (var cp in Codepoints) sb.Append(char.ConvertFromUtf32(cp));
            return sb.ToString();
        }
    }

    /// <summary>Upper-case hex code points joined by '-', e.g. <c>1F468-200D-1F469</c>.</summary>
    public string Key => EmojiTestFile.KeyOf(Codepoints);

    /// <summary>True for a sequence with a skin-tone modifier (U+1F3FB..U+1F3FF).</summary>
    public bool HasSkinTone => Codepoints.Any(c => c is >= 0x1F3FB and <= 0x1F3FF);
}

/// <summary>Parser for Unicode's <c>emoji-test.txt</c> (the list of emoji with their names, groups and subgroups).</summary>
internal static class EmojiTestFile
{
    /// <summary>Upper-case hex code points joined by '-'.</summary>
    public static string KeyOf(IEnumerable<int> codepoints) =>
        string.Join('-', codepoints.Select(c => c.ToString("X4", CultureInfo.InvariantCulture)));

    /// <summary>Reads every emoji line of the file.</summary>
    public static IReadOnlyList<EmojiEntry> Read(string path) => Parse(File.ReadLines(path, Encoding.UTF8));

    /// <summary>
    /// Parses the lines of the file. Data lines look like
    /// <c>1F600 ; fully-qualified # 😀 E1.0 grinning face</c>; comment lines <c># group: NAME</c> and
    /// <c># subgroup: NAME</c> set the group and subgroup of the lines that follow. Other lines are ignored.
    /// </summary>
    public static IReadOnlyList<EmojiEntry> Parse(IEnumerable<string> lines)
    {
        var result = new List<EmojiEntry>();
        string group = "", subgroup = "";
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0) continue;
            if (line[0] == '#')
            {
                var body = line[1..].TrimStart();
                if (body.StartsWith("group:", StringComparison.Ordinal)) { group = body["group:".Length..].Trim(); subgroup = ""; }
                else if (body.StartsWith("subgroup:", StringComparison.Ordinal)) subgroup = body["subgroup:".Length..].Trim();
                continue;
            }
            var entry = ParseLine(line, group, subgroup);
            if (entry is not null) result.Add(entry);
        }
        return result;
    }

    /// <summary>Parses one data line; null when it is not a well-formed emoji line.</summary>
    public static EmojiEntry? ParseLine(string line, string group, string subgroup)
    {
        int semi = line.IndexOf(';');
        int hash = line.IndexOf('#');
        if (semi <= 0 || hash < semi) return null;
        var cps = new List<int>();
        foreach (var token in line[..semi].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(token, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var cp) || cp < 0 || cp > 0x10FFFF) return null;
            cps.Add(cp);
        }
        if (cps.Count == 0) return null;
        var status = line[(semi + 1)..hash].Trim();
        // Comment: "<emoji> E<version> <name>"; the name follows the version token.
        var comment = line[(hash + 1)..].Trim();
        var parts = comment.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        string name;
        if (parts.Length == 3 && parts[1].Length > 1 && parts[1][0] == 'E' && char.IsDigit(parts[1][1])) name = parts[2];
        else if (parts.Length >= 2) name = string.Join(' ', parts.Skip(1));
        else return null;
        return new EmojiEntry(cps, status, name.Trim(), group, subgroup);
    }
}
