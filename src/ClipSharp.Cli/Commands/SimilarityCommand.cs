using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.Json;
using ClipSharp.Data.Readers;
using static TorchSharp.torch;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip similarity --model CKPT IMAGE… TEXT…</c>: label probabilities for each image.</summary>
/// <remarks>
/// The leading arguments that name existing files are the images, the rest are the candidate texts. A text that
/// looks like an option (starts with '-') is refused unless it follows <c>--</c>, so a misplaced option is never
/// ranked as a label.
/// </remarks>
internal static class SimilarityCommand
{
    public static Command Create()
    {
        var model = Common.ModelOption();
        var config = Common.ConfigOption();
        var vocab = Common.VocabOption();
        var args = new Argument<string[]>("images-then-texts")
        {
            Description = "One or more image files, then the candidate texts",
            Arity = ArgumentArity.OneOrMore,
        };
        var json = new Option<bool>("--json") { Description = "Print JSON: {\"images\": [{\"path\", \"probs\": [{\"text\", \"prob\"}]}]}, texts in the order given" };
        var cmd = new Command("similarity", "Softmax over the model's scaled image–text similarities, like the reference README example")
            { model, config, vocab, args, json };
        cmd.SetAction(r =>
        {
            var (images, labels) = Split(r.GetValue(args)!, afterDoubleDash: AfterDoubleDash(r));
            using var m = Common.LoadModel(r.GetValue(model)!, r.GetValue(config));
            var tok = Common.LoadTokenizer(m, r.GetValue(vocab));
            using var scope = NewDisposeScope();
            var probs = m.Probabilities(m.EncodeImages(images), m.EncodeTexts(labels, tok));
            if (r.GetValue(json))
            {
                var doc = new
                {
                    images = images.Select((img, i) => new
                    {
                        path = img,
                        probs = labels.Select((l, j) => new { text = l, prob = probs[i, j] }),
                    }),
                };
                Console.WriteLine(JsonSerializer.Serialize(doc));
                return 0;
            }
            int width = labels.Max(l => l.Length);
            for (int i = 0; i < images.Length; i++)
            {
                if (i > 0) Console.WriteLine();
                Console.WriteLine($"Label probs for {Path.GetFileName(images[i])}:");
                foreach (var j in Enumerable.Range(0, labels.Length).OrderByDescending(j => probs[i, j]))
                    Console.WriteLine($"  {labels[j].PadRight(width)}  {probs[i, j]:F4}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>How many of the command's values came after a literal <c>--</c>.</summary>
    internal static int AfterDoubleDash(ParseResult r)
    {
        int i = r.Tokens.ToList().FindIndex(t => t.Type == TokenType.DoubleDash);
        return i < 0 ? 0 : r.Tokens.Count - 1 - i;
    }

    /// <summary>Leading existing files are images; the rest are texts. The last <paramref name="afterDoubleDash"/> values are texts whatever they look like.</summary>
    internal static (string[] Images, string[] Texts) Split(string[] values, int afterDoubleDash)
    {
        int literalFrom = values.Length - afterDoubleDash;
        int n = 0;
        while (n < values.Length && n < literalFrom && (File.Exists(values[n]) || Directory.Exists(values[n]))) n++;
        if (n == 0)
        {
            var first = values[0];
            throw new CliException(LooksLikeImagePath(first)
                ? $"image not found: {first}"
                : $"similarity: the first argument must be an image file, got '{first}' (usage: clip similarity -m MODEL IMAGE... TEXT...)");
        }
        foreach (var dir in values.Take(n).Where(Directory.Exists))
            throw new CliException($"{dir}: is a folder; similarity takes image files (use clip predict for a folder)");
        var texts = values[n..];
        if (texts.Length == 0) throw new CliException("similarity: give at least one candidate text after the images");
        for (int i = 0; i < texts.Length; i++)
        {
            bool literal = n + i >= literalFrom;
            if (literal) continue;
            if (texts[i].Length > 1 && texts[i][0] == '-')
                throw new CliException($"similarity: '{texts[i]}' looks like an option, not a text (options go before the arguments; to compare against it as a text, put it after --)");
            if (LooksLikeImagePath(texts[i]))
                throw new CliException($"similarity: '{texts[i]}' looks like an image file but does not exist (images come first; to use it as a text, put it after --)");
            if (string.IsNullOrWhiteSpace(texts[i])) throw new CliException("similarity: a candidate text is empty");
        }
        return (values[..n], texts);
    }

    static bool LooksLikeImagePath(string s) =>
        !s.Contains(' ', StringComparison.Ordinal) && DatasetFiles.IsImageFile(s);
}
