using System.CommandLine;
using System.Text.Json;
using ClipSharp.Text;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip tokenize TEXT…</c>: token ids as JSON, one array per text.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var texts = new Argument<string[]>("texts") { Description = "Texts to tokenize", Arity = ArgumentArity.OneOrMore };
        var context = new Option<int>("--context-length") { Description = "Context length (77 for every released model)", DefaultValueFactory = _ => 77 };
        var truncate = new Option<bool>("--truncate") { Description = "Cut over-long texts, keeping end-of-text last (otherwise they are an error)" };
        var vocab = Common.VocabOption();
        var cmd = new Command("tokenize", "Tokenize texts with the CLIP byte-level BPE; prints JSON ids") { texts, context, truncate, vocab };
        cmd.SetAction(r =>
        {
            var tok = VocabularyLocator.Load(r.GetValue(vocab));
            int ctx = r.GetValue(context);
            if (ctx < 2) throw new CliException("--context-length must be at least 2");
            var rows = r.GetValue(texts)!.Select(t => tok.Tokenize(t, ctx, r.GetValue(truncate))).ToList();
            Console.WriteLine(JsonSerializer.Serialize(rows));
            return 0;
        });
        return cmd;
    }
}
