//! Pipelines (`/pipelines`) and their ordered stages.
//!
//! A pipeline has open stages (each with a default probability) and
//! exactly one `won` and one `lost` stage, which are terminal: an
//! opportunity moved there is closed. Migration 1 creates the default
//! pipeline ("Sales": Lead, Qualified, Proposal, Negotiation, Won, Lost).
//!
//! - `GET /pipelines`, `GET /pipelines/{id}`: with their stages in order;
//! - `POST /pipelines`, `PUT /pipelines/{id}` (name, `is_default`),
//!   `DELETE /pipelines/{id}` (409 while opportunities use it, or for the
//!   default pipeline) — `crm:admin`;
//! - `POST /pipelines/{id}/stages`, `PUT /pipelines/{id}/stages/{stage_id}`
//!   (name, probability, position: the others shift),
//!   `DELETE /pipelines/{id}/stages/{stage_id}[?move_to=<stage>]`: a stage
//!   opportunities use is a 409 unless they are moved to `move_to`, a stage
//!   of the same pipeline (each move is in the opportunities' history);
//!   the won and lost stages cannot be deleted.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{extract::FromRequest, openapi::Operation, prelude::*, Statement};

use crate::{flag, id_list, invalid, missing, totals::Totals, Crm, Id, ADMIN, READ};

/// A stage of a pipeline.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Stage {
    /// Id.
    pub id: i64,
    /// Its pipeline.
    pub pipeline_id: i64,
    /// Name.
    pub name: String,
    /// 1 for the first stage.
    pub position: i64,
    /// Default win probability of its opportunities, in percent.
    pub probability: i64,
    /// `open`, `won` or `lost`.
    pub kind: String,
}

/// A pipeline with its stages.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Pipeline {
    /// Id.
    pub id: i64,
    /// Name (unique).
    pub name: String,
    /// New opportunities go here when they name no pipeline.
    #[serde(deserialize_with = "flag")]
    pub is_default: bool,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Its stages, in order.
    #[serde(default)]
    pub stages: Vec<Stage>,
}

/// A stage as a client describes it.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct StageInput {
    /// Name (required on create).
    pub name: Option<String>,
    /// 0 to 100 (default: 0 for lost, 100 for won, 10 otherwise).
    pub probability: Option<i64>,
    /// `open` (default), `won` or `lost`.
    pub kind: Option<String>,
    /// Where it goes (1 = first); the end when absent.
    pub position: Option<i64>,
}

/// A new pipeline.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PipelineInput {
    /// Name (unique).
    pub name: String,
    /// Make it the default pipeline.
    #[serde(default)]
    pub is_default: bool,
    /// Its stages in order: at least one open, exactly one won and one lost.
    pub stages: Vec<StageInput>,
}

/// A pipeline's changes.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PipelinePatch {
    /// New name.
    pub name: Option<String>,
    /// `true` makes it the default (the former default stops being one).
    pub is_default: Option<bool>,
}

/// Where a deleted stage's opportunities go.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct StageDeletion {
    /// A stage of the same pipeline.
    pub move_to: Option<i64>,
}

/// The `{stage_id}` of a route (404 when not a positive integer).
#[derive(Clone, Copy, Debug)]
pub struct StageId(pub i64);

impl FromRequest for StageId {
    const READS: Reads = Reads::PARAMS;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        request
            .param("stage_id")
            .and_then(|raw| raw.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .map(StageId)
            .ok_or_else(|| missing("stage"))
    }

    fn document(operation: &mut Operation) {
        operation.add_parameter(json!({
            "name": "stage_id", "in": "path", "required": true,
            "schema": {"type": "integer", "format": "int64", "minimum": 1},
        }));
    }
}

const PIPELINE_COLUMNS: &str = "id, name, is_default, created_at, updated_at";
const STAGE_COLUMNS: &str = "id, pipeline_id, name, position, probability, kind";

/// The pipelines' routes.
pub fn routes(router: Router<Crm>) -> Router<Crm> {
    router
        .get("/pipelines", Access::Requires(READ), Crm::list_pipelines)
        .summary("List pipelines with their stages")
        .post("/pipelines", Access::Requires(ADMIN), Crm::create_pipeline)
        .summary("Create a pipeline with its stages")
        .doc(|op| op.error_response(409, "A pipeline has this name"))
        .get(
            "/pipelines/{id}",
            Access::Requires(READ),
            Crm::show_pipeline,
        )
        .summary("A pipeline with its stages")
        .put(
            "/pipelines/{id}",
            Access::Requires(ADMIN),
            Crm::update_pipeline,
        )
        .summary("Rename a pipeline or make it the default")
        .delete(
            "/pipelines/{id}",
            Access::Requires(ADMIN),
            Crm::delete_pipeline,
        )
        .summary("Delete a pipeline no opportunity uses")
        .doc(|op| op.error_response(409, "Opportunities use it, or it is the default"))
        .post(
            "/pipelines/{id}/stages",
            Access::Requires(ADMIN),
            Crm::add_stage,
        )
        .summary("Add an open stage")
        .put(
            "/pipelines/{id}/stages/{stage_id}",
            Access::Requires(ADMIN),
            Crm::update_stage,
        )
        .summary("Rename, re-weight or move a stage")
        .delete(
            "/pipelines/{id}/stages/{stage_id}",
            Access::Requires(ADMIN),
            Crm::delete_stage,
        )
        .summary("Delete a stage, moving its opportunities to move_to")
        .doc(|op| op.error_response(409, "Opportunities use it and no move_to was given"))
}

/// Checks a probability: 0 to 100.
fn probability(field: &str, value: i64) -> Result<i64, (String, String)> {
    if (0..=100).contains(&value) {
        Ok(value)
    } else {
        Err((field.into(), "must be between 0 and 100".into()))
    }
}

impl Crm {
    /// Pipelines matching `condition` (on the pipelines table), with stages.
    fn pipelines_where(
        &self,
        condition: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Pipeline>, HostError> {
        let mut pipelines: Vec<Pipeline> = self.host.query_as(
            &format!("SELECT {PIPELINE_COLUMNS} FROM crm_pipelines {condition} ORDER BY id"),
            params,
        )?;
        if pipelines.is_empty() {
            return Ok(pipelines);
        }
        let ids: Vec<i64> = pipelines.iter().map(|p| p.id).collect();
        let stages: Vec<Stage> = self.host.query_as(
            &format!(
                "SELECT {STAGE_COLUMNS} FROM crm_stages WHERE pipeline_id IN ({}) ORDER BY position, id",
                id_list(&ids)
            ),
            params![],
        )?;
        for pipeline in &mut pipelines {
            pipeline.stages = stages
                .iter()
                .filter(|stage| stage.pipeline_id == pipeline.id)
                .cloned()
                .collect();
        }
        Ok(pipelines)
    }

    /// The pipeline `id` with its stages, or a 404.
    pub fn pipeline(&self, id: i64) -> Result<Pipeline, Response> {
        self.pipelines_where("WHERE id = $1", params![id])?
            .pop()
            .ok_or_else(|| missing("pipeline"))
    }

    /// The default pipeline (the oldest when none is marked).
    pub fn default_pipeline(&self) -> Result<Pipeline, Response> {
        let id: Option<i64> = self
            .host
            .query_one(
                "SELECT id FROM crm_pipelines ORDER BY is_default DESC, id LIMIT 1",
                params![],
            )?
            .and_then(|row| row.get("id").and_then(Value::as_i64));
        match id {
            Some(id) => self.pipeline(id),
            None => Err(Response::invalid(
                "pipeline_id",
                "no pipeline exists; create one",
            )),
        }
    }

    /// The stage `id`, if it exists.
    pub fn stage(&self, id: i64) -> Result<Option<Stage>, HostError> {
        self.host.query_one_as(
            &format!("SELECT {STAGE_COLUMNS} FROM crm_stages WHERE id = $1"),
            params![id],
        )
    }

    fn list_pipelines(&self, window: Window) -> Result<ListBody<Pipeline>, Response> {
        let total: i64 = self
            .host
            .query_scalar("SELECT COUNT(*) FROM crm_pipelines", params![])?;
        let page = self.pipelines_where(
            &format!(
                "WHERE id IN (SELECT id FROM crm_pipelines ORDER BY id LIMIT {} OFFSET {})",
                window.limit, window.skip
            ),
            params![],
        )?;
        Ok(listing::body(page, total, window))
    }

    fn show_pipeline(&self, Id(id): Id) -> Result<Json<Pipeline>, Response> {
        self.pipeline(id).map(Json)
    }

    fn create_pipeline(
        &self,
        Json(input): Json<PipelineInput>,
    ) -> Result<Created<Pipeline>, Response> {
        let mut problems = Vec::new();
        let name = input.name.trim().to_string();
        if name.is_empty() {
            problems.push(("name".to_string(), "is required".to_string()));
        }
        let mut stages = Vec::new();
        for (index, stage) in input.stages.iter().enumerate() {
            let field = |name: &str| format!("stages[{index}].{name}");
            let kind = stage.kind.clone().unwrap_or_else(|| "open".into());
            if !matches!(kind.as_str(), "open" | "won" | "lost") {
                problems.push((field("kind"), "must be open, won or lost".into()));
            }
            let stage_name = stage.name.as_deref().unwrap_or("").trim().to_string();
            if stage_name.is_empty() {
                problems.push((field("name"), "is required".into()));
            }
            let default = match kind.as_str() {
                "won" => 100,
                "lost" => 0,
                _ => 10,
            };
            match probability(&field("probability"), stage.probability.unwrap_or(default)) {
                Ok(p) => stages.push((stage_name, p, kind)),
                Err(problem) => problems.push(problem),
            }
        }
        let count = |kind: &str| stages.iter().filter(|(_, _, k)| k == kind).count();
        if count("open") == 0 || count("won") != 1 || count("lost") != 1 {
            problems.push((
                "stages".into(),
                "need at least one open stage, exactly one won and one lost".into(),
            ));
        }
        if !problems.is_empty() {
            return Err(invalid(&problems));
        }
        // Terminal stages last, whatever order they came in.
        stages.sort_by_key(|(_, _, kind)| match kind.as_str() {
            "open" => 0,
            "won" => 1,
            _ => 2,
        });
        let now = now();
        let mut statements = Vec::new();
        if input.is_default {
            statements.push(Statement::new(
                "UPDATE crm_pipelines SET is_default = $1",
                params![false],
            ));
        }
        statements.push(Statement::new(
            "INSERT INTO crm_pipelines (name, is_default, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
            params![name, input.is_default, now],
        ));
        for (position, (stage_name, p, kind)) in stages.iter().enumerate() {
            statements.push(Statement::new(
                "INSERT INTO crm_stages (pipeline_id, name, position, probability, kind) \
                 VALUES ((SELECT id FROM crm_pipelines WHERE name = $1), $2, $3, $4, $5)",
                params![name, stage_name, position as i64 + 1, p, kind],
            ));
        }
        let results = self.host.transaction(statements)?;
        let id = results
            .iter()
            .flatten()
            .find_map(|row| row.get("id").and_then(Value::as_i64))
            .ok_or_else(|| Response::plugin_error("the pipeline was not created"))?;
        self.pipeline(id).map(Created)
    }

    fn update_pipeline(
        &self,
        Id(id): Id,
        Json(patch): Json<PipelinePatch>,
    ) -> Result<Json<Pipeline>, Response> {
        let current = self.pipeline(id)?;
        let name = patch
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or(&current.name)
            .to_string();
        if name.is_empty() {
            return Err(Response::invalid("name", "is required"));
        }
        let mut statements = Vec::new();
        if patch.is_default == Some(true) {
            statements.push(Statement::new(
                "UPDATE crm_pipelines SET is_default = $1",
                params![false],
            ));
        }
        let is_default = patch.is_default.unwrap_or(current.is_default);
        statements.push(Statement::new(
            "UPDATE crm_pipelines SET name = $1, is_default = $2, updated_at = $3 WHERE id = $4",
            params![name, is_default, now(), id],
        ));
        self.host.transaction(statements)?;
        self.pipeline(id).map(Json)
    }

    fn delete_pipeline(&self, Id(id): Id) -> Result<NoContent, Response> {
        let pipeline = self.pipeline(id)?;
        if pipeline.is_default {
            return Err(Response::conflict(
                "the default pipeline cannot be deleted; make another the default first",
            ));
        }
        let used: i64 = self.host.query_scalar(
            "SELECT COUNT(*) FROM crm_opportunities WHERE pipeline_id = $1",
            params![id],
        )?;
        if used > 0 {
            return Err(Response::conflict(&format!(
                "{used} opportunities use this pipeline"
            )));
        }
        self.host.transaction(vec![
            Statement::new("DELETE FROM crm_stages WHERE pipeline_id = $1", params![id]),
            Statement::new("DELETE FROM crm_pipelines WHERE id = $1", params![id]),
        ])?;
        Ok(NoContent)
    }

    /// Statements that give `order` (stage ids) positions 1, 2, ...
    fn reorder(order: &[i64]) -> Vec<Statement> {
        order
            .iter()
            .enumerate()
            .map(|(index, id)| {
                Statement::new(
                    "UPDATE crm_stages SET position = $1 WHERE id = $2",
                    params![index as i64 + 1, id],
                )
            })
            .collect()
    }

    /// `stages` in order with `moved` (if any) placed at `position`.
    fn order_with(stages: &[Stage], moved: i64, position: Option<i64>) -> Vec<i64> {
        let mut order: Vec<i64> = stages
            .iter()
            .map(|s| s.id)
            .filter(|id| *id != moved)
            .collect();
        let at = position
            .map(|p| (p.max(1) - 1) as usize)
            .unwrap_or(order.len())
            .min(order.len());
        order.insert(at, moved);
        order
    }

    fn add_stage(
        &self,
        Id(id): Id,
        Json(input): Json<StageInput>,
    ) -> Result<Created<Pipeline>, Response> {
        let pipeline = self.pipeline(id)?;
        let name = input.name.as_deref().unwrap_or("").trim().to_string();
        let mut problems = Vec::new();
        if name.is_empty() {
            problems.push(("name".to_string(), "is required".to_string()));
        }
        if input.kind.as_deref().is_some_and(|kind| kind != "open") {
            problems.push((
                "kind".into(),
                "a pipeline has one won and one lost stage already; new stages are open".into(),
            ));
        }
        let p = probability("probability", input.probability.unwrap_or(10))
            .map_err(|e| problems.push(e))
            .unwrap_or(0);
        if !problems.is_empty() {
            return Err(invalid(&problems));
        }
        let stage_id: i64 = self.host.query_scalar(
            "INSERT INTO crm_stages (pipeline_id, name, position, probability, kind) VALUES ($1, $2, $3, $4, 'open') RETURNING id",
            params![id, name, pipeline.stages.len() as i64 + 1, p],
        )?;
        // Without a position, the new open stage goes before the terminal ones.
        let open = pipeline.stages.iter().filter(|s| s.kind == "open").count() as i64;
        let order = Self::order_with(
            &pipeline.stages,
            stage_id,
            Some(input.position.unwrap_or(open + 1)),
        );
        self.host.transaction(Self::reorder(&order))?;
        self.pipeline(id).map(Created)
    }

    /// The stage `stage_id` of the pipeline, or a 404.
    fn stage_of(pipeline: &Pipeline, stage_id: i64) -> Result<&Stage, Response> {
        pipeline
            .stages
            .iter()
            .find(|stage| stage.id == stage_id)
            .ok_or_else(|| missing("stage in this pipeline"))
    }

    fn update_stage(
        &self,
        Id(id): Id,
        StageId(stage_id): StageId,
        Json(input): Json<StageInput>,
    ) -> Result<Json<Pipeline>, Response> {
        let pipeline = self.pipeline(id)?;
        let stage = Self::stage_of(&pipeline, stage_id)?;
        if input.kind.as_deref().is_some_and(|kind| kind != stage.kind) {
            return Err(Response::invalid("kind", "a stage's kind cannot change"));
        }
        let name = input
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or(&stage.name)
            .to_string();
        if name.is_empty() {
            return Err(Response::invalid("name", "is required"));
        }
        let p = probability(
            "probability",
            input.probability.unwrap_or(stage.probability),
        )
        .map_err(|problem| invalid(&[problem]))?;
        let mut statements = vec![Statement::new(
            "UPDATE crm_stages SET name = $1, probability = $2 WHERE id = $3",
            params![name, p, stage_id],
        )];
        if input.position.is_some() {
            statements.extend(Self::reorder(&Self::order_with(
                &pipeline.stages,
                stage_id,
                input.position,
            )));
        }
        self.host.transaction(statements)?;
        self.pipeline(id).map(Json)
    }

    fn delete_stage(
        &self,
        caller: Caller,
        Id(id): Id,
        StageId(stage_id): StageId,
        Query(deletion): Query<StageDeletion>,
    ) -> Result<NoContent, Response> {
        let pipeline = self.pipeline(id)?;
        let stage = Self::stage_of(&pipeline, stage_id)?;
        if stage.kind != "open" {
            return Err(Response::conflict(
                "a pipeline keeps its won and lost stages",
            ));
        }
        if pipeline.stages.iter().filter(|s| s.kind == "open").count() == 1 {
            return Err(Response::conflict(
                "a pipeline keeps at least one open stage",
            ));
        }
        let used: i64 = self.host.query_scalar(
            "SELECT COUNT(*) FROM crm_opportunities WHERE stage_id = $1",
            params![stage_id],
        )?;
        let mut statements = Vec::new();
        let mut moved_to = None;
        if used > 0 {
            let Some(target) = deletion.move_to else {
                return Err(Response::error_with_details(
                    409,
                    "CONFLICT",
                    &format!("{used} opportunities are in this stage; give move_to to move them"),
                    &[("move_to", "required while opportunities use the stage")],
                ));
            };
            let target_stage = Self::stage_of(&pipeline, target).map_err(|_| {
                Response::invalid("move_to", "must be another stage of this pipeline")
            })?;
            if target == stage_id {
                return Err(Response::invalid(
                    "move_to",
                    "must be another stage of this pipeline",
                ));
            }
            if target_stage.kind != "open" {
                return Err(Response::invalid(
                    "move_to",
                    "must be an open stage (won and lost close deals through their routes)",
                ));
            }
            // The move is a stage change like any other: in the history.
            let now = now();
            statements.push(Statement::new(
                "INSERT INTO crm_stage_history (opportunity_id, from_stage_id, to_stage_id, status, \
                 changed_by, changed_at) SELECT id, stage_id, $1, status, $2, $3 \
                 FROM crm_opportunities WHERE stage_id = $4",
                params![target, caller.user_id, now, stage_id],
            ));
            statements.push(Statement::new(
                "UPDATE crm_opportunities SET stage_id = $1, updated_at = $2 WHERE stage_id = $3",
                params![target, now, stage_id],
            ));
            moved_to = Some(target);
        }
        statements.push(Statement::new(
            "DELETE FROM crm_stages WHERE id = $1",
            params![stage_id],
        ));
        let rest: Vec<Stage> = pipeline
            .stages
            .iter()
            .filter(|s| s.id != stage_id)
            .cloned()
            .collect();
        statements.extend(Self::reorder(
            &rest.iter().map(|s| s.id).collect::<Vec<_>>(),
        ));
        if let Some(target) = moved_to {
            statements = Totals::moving_stage(stage_id, target, statements);
        }
        self.host.transaction(statements)?;
        Ok(NoContent)
    }
}
