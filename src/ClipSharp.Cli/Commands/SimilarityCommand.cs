using System.CommandLine;
using ClipSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip similarity --model CKPT IMAGE TEXT…</c>: label probabilities for one image.</summary>
internal static class SimilarityCommand
{
    public static Command Create()
    {
        var model = Common.ModelOption();
        var config = Common.ConfigOption();
        var vocab = Common.VocabOption();
        var image = new Argument<string>("image") { Description = "Image file" };
        var texts = new Argument<string[]>("texts") { Description = "Candidate texts", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("similarity", "Softmax over the scaled image–text similarities, like the reference README example") { model, config, vocab, image, texts };
        cmd.SetAction(r =>
        {
            var img = r.GetValue(image)!;
            Common.RequireFiles([img]);
            var labels = r.GetValue(texts)!;
            using var m = Common.LoadModel(r.GetValue(model)!, r.GetValue(config));
            var tok = Common.LoadTokenizer(m, r.GetValue(vocab));
            using var scope = NewDisposeScope();
            var probs = m.Probabilities(m.EncodeImages([img]), m.EncodeTexts(labels, tok));
            Console.WriteLine($"Label probs for {Path.GetFileName(img)}:");
            int width = labels.Max(l => l.Length);
            foreach (var i in Enumerable.Range(0, labels.Length).OrderByDescending(i => probs[0, i]))
                Console.WriteLine($"  {labels[i].PadRight(width)}  {probs[0, i]:F4}");
            return 0;
        });
        return cmd;
    }
}
