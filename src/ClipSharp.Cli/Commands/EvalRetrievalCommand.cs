using System.CommandLine;
using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip eval retrieval</c>: image→text and text→image Recall@K and median rank.</summary>
internal static class EvalRetrievalCommand
{
    public static Command Create()
    {
        var common = new EvalCommon();
        var data = new Option<string>("--data", "-d") { Description = "Image–caption data: CSV/TSV with a caption column (rows naming the same image add captions) or WebDataset shards (.txt one caption per line)", Required = true };
        var ks = new Option<string>("--recall-at") { Description = "Comma-separated K for Recall@K", DefaultValueFactory = _ => "1,5,10" };
        var cmd = new Command("retrieval", "Image–text retrieval Recall@K in both directions") { data, ks };
        common.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var kList = EvalCommon.IntList(r.GetValue(ks)!, "--recall-at");
            return common.Run(r, new(), (ev, outDir) =>
            {
                var path = r.GetValue(data)!;
                if (!File.Exists(path) && !Directory.Exists(path) && !path.Contains('{') && !path.Contains('*')) throw new CliException($"dataset not found: {path}");
                var ds = DatasetFiles.OpenPairs(path, common.Columns(r));
                var result = ev.Retrieval(ds, kList);
                EvalReports.WriteJson(Path.Combine(outDir, "retrieval.json"), "retrieval", r.GetValue(common.Model), new { data = path, recall_at = kList }, result);
                EvalCommon.Done(outDir, "retrieval", EvalReports.Markdown(result, r.GetValue(common.Model)), common.IsQuiet(r));
                var m = result.Metrics;
                EvalCommon.Result(FormattableString.Invariant($"image→text R@{kList[0]} {100 * m.ImageToText.RecallAtK[kList[0]]:0.00}%  text→image R@{kList[0]} {100 * m.TextToImage.RecallAtK[kList[0]]:0.00}%  ({result.Dataset.Images} images, {result.Texts} captions)"));
                return 0;
            });
        });
        return cmd;
    }
}
